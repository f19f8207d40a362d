"""Loopback stand-ins for the Slack Web API and the Zendesk API, for tests and the offline demo.

They speak HTTP on 127.0.0.1 so the real slack_sdk, slack_bolt and zenpy code runs against them.
"""
