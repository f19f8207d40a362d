"""AfterAck: one user's actions in arrival order, different users' side by side, failures logged."""

from __future__ import annotations

import logging
import threading

import pytest

from bot.slack.listeners import AfterAck


@pytest.fixture
def after_ack():
    runner = AfterAck(threads=4)
    yield runner
    runner.shutdown()


def test_one_users_actions_run_in_the_order_they_arrived(after_ack: AfterAck) -> None:
    done: list[int] = []
    for n in range(200):
        after_ack.submit("U1", lambda n=n: done.append(n))
    assert after_ack.wait_idle(timeout=10)
    assert done == list(range(200))


def test_a_slow_user_does_not_hold_up_another(after_ack: AfterAck) -> None:
    release, other_done = threading.Event(), threading.Event()
    after_ack.submit("USLOW", lambda: release.wait(timeout=30))
    after_ack.submit("UOTHER", other_done.set)
    try:
        assert other_done.wait(timeout=10)
        assert not after_ack.wait_idle(timeout=0)  # the slow one is still running
    finally:
        release.set()
    assert after_ack.wait_idle(timeout=10)


def test_a_failure_is_logged_and_the_users_next_action_still_runs(
    after_ack: AfterAck, caplog: pytest.LogCaptureFixture
) -> None:
    done: list[str] = []

    def fail() -> None:
        raise RuntimeError("store unavailable")

    after_ack.submit("U1", fail)
    after_ack.submit("U1", lambda: done.append("second"))
    assert after_ack.wait_idle(timeout=10)
    assert done == ["second"]
    assert "store unavailable" in caplog.text and any(r.levelno == logging.ERROR for r in caplog.records)


def test_shutdown_runs_what_was_submitted_first() -> None:
    runner, release, done = AfterAck(threads=2), threading.Event(), []
    runner.submit("U1", lambda: release.wait(timeout=30))
    for n in range(5):
        runner.submit("U1", lambda n=n: done.append(n))
    release.set()
    runner.shutdown()
    assert done == [0, 1, 2, 3, 4]
