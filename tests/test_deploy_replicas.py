"""deploy/compose.replicas.yaml stays in step with the code: a PostgreSQL service the replicas wait
for, two replicas of the image with their own port and data, one read-only config that parses with
the database URL from the environment."""

from pathlib import Path

import yaml

from bot.config import parse_settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_two_replicas_wait_for_postgres_and_share_only_the_config_and_the_database() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.replicas.yaml").read_text())
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:") and services["postgres"]["healthcheck"]
    replicas = {name: s for name, s in services.items() if name.startswith("draftdesk-")}
    assert len(replicas) >= 2
    ports, data = set(), set()
    for service in replicas.values():
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        mounts = dict(reversed(v.split(":")[:2]) for v in service["volumes"])
        config = service["environment"]["DRAFTDESK_CONFIG"]
        [config_mount] = [v for v in service["volumes"] if v.split(":")[1] == config]
        assert config_mount.endswith(":ro")  # one config, read by every replica, written by none
        data.add(mounts["/data"])
        ports.add(service["ports"][0].split(":")[0])
    assert len(ports) == len(data) == len(replicas)  # each its own port and its own files


def test_the_config_the_compose_file_describes_parses_with_the_url_from_the_environment() -> None:
    raw = {
        "slack": {"channel": "C1"},
        "zendesk": {"subdomain": "acme"},
        "storage": {"url": "postgresql://draftdesk@postgres:5432/draftdesk"},
        "grounding": {"path": "/data/helpcenter.json"},
        "models": [{"name": "m", "base_model": "/models/m"}],
    }
    env = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "s",
        "ZENDESK_EMAIL": "a@example.com",
        "ZENDESK_API_TOKEN": "t",
        "ZENDESK_WEBHOOK_SECRET": "w",
        "DRAFTDESK_DATABASE_URL": "postgresql://draftdesk:pw@postgres:5432/draftdesk",
    }
    settings = parse_settings(raw, env)
    assert settings.database.url == env["DRAFTDESK_DATABASE_URL"]
    assert (
        "\n".join(
            line for line in (DEPLOY / "compose.replicas.yaml").read_text().splitlines() if "storage" in line
        ).count(raw["storage"]["url"])
        == 1
    )
