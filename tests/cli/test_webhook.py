"""The webhook sender of `steth watch` against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import free_port
from hook_receiver import receiver

from stethoscope.cli.webhook import WebhookConfig, WebhookSender
from stethoscope.errors import UsageError


def send(url: str, events: int = 1) -> tuple[int, int]:
    sender = WebhookSender(WebhookConfig(url=url, attempts=3, backoff_s=0.01, timeout_s=5))
    for i in range(events):
        sender.send({"event": "finding", "n": i})
    stats = sender.close()
    return stats.delivered, stats.failed


@pytest.mark.parametrize(
    ("statuses", "delivered", "failed", "posts"),
    [
        pytest.param([204], 2, 0, 2, id="accepted"),
        pytest.param([503, 429, 200], 2, 0, 4, id="retried-until-accepted"),
        pytest.param([500], 0, 2, 6, id="gives-up-after-the-attempts"),
        pytest.param([400], 0, 2, 2, id="permanent-refusal-not-retried"),
    ],
)
def test_delivery(
    statuses: list[int], delivered: int, failed: int, posts: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with receiver(statuses) as (url, bodies):
        assert send(url, events=2) == (delivered, failed)
    assert len(bodies) == posts and {b["n"] for b in bodies} == {0, 1}
    assert ("failed so far" in capsys.readouterr().err) == bool(failed)


def test_a_receiver_that_is_not_there_is_counted_not_fatal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert send(f"http://127.0.0.1:{free_port()}/") == (0, 1)
    assert "1 failed so far" in capsys.readouterr().err


def test_a_full_queue_refuses_and_counts() -> None:
    with receiver([204]) as (url, _):
        sender = WebhookSender(WebhookConfig(url=url, max_pending=1, timeout_s=5))
        for i in range(50):
            sender.send({"n": i})
        stats = sender.close()
    assert stats.refused > 0 and stats.delivered + stats.refused == 50


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({"url": "mailto:x@y"}, id="not-http"),
        pytest.param({"url": "http://h", "timeout_s": 0}, id="no-timeout"),
        pytest.param({"url": "http://h", "attempts": 0}, id="no-attempt"),
        pytest.param({"url": "http://h", "max_pending": 0}, id="no-queue"),
    ],
)
def test_bad_config_is_refused(config: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        WebhookConfig(**config).validate()
