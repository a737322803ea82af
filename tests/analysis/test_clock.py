"""Clock skew: one replica's timestamps jump away from when its lines arrive."""

from __future__ import annotations

import time

import pytest
from conftest import RunningServer, stored_log_bodies

from stethoscope.model.timeutil import format_ns
from stethoscope.sources.records import log_record
from stethoscope.sources.shipper import Shipper, ShipperConfig

SECOND = 1_000_000_000
MINUTE = 60 * SECOND


def send_history(server: RunningServer, service: str, skew: dict[str, int], start: int) -> None:
    """30 minutes of captured lines from two replicas, one every 10 s each; from minute 20 on,
    each replica's stamps are off by `skew[instance]` ns."""
    shipper = Shipper(ShipperConfig(endpoint=server.otlp_url)).start()
    for instance in ("web-a", "web-b"):
        channel = shipper.channel(service=service, instance=instance, scope="test")
        for step in range(180):
            observed = start + step * 10 * SECOND
            off = skew.get(instance, 0) if observed >= start + 20 * MINUTE else 0
            stamp = observed - 40_000_000 + off  # lines arrive 40 ms after they are printed
            channel.log(
                log_record(body=f"served request {step}", time_ns=stamp, observed_ns=observed)
            )
    stats = shipper.close(timeout_s=30)
    assert stats.pending == 0
    stored_log_bodies(server, service, expect=360)


def why_window(server: RunningServer, start: int, service: str) -> dict:
    return server.steth_json(
        "why",
        "--since", format_ns(start + 20 * MINUTE),
        "--until", format_ns(start + 30 * MINUTE),
        "--baseline", f"{format_ns(start)}..{format_ns(start + 20 * MINUTE)}",
        "--service", service,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("skew_s", "direction"),
    [pytest.param(120, "ahead", id="ahead"), pytest.param(-45, "behind", id="behind")],
)
def test_a_skewed_replica_is_named_with_the_size_of_the_jump(
    server: RunningServer, skew_s: int, direction: str
) -> None:
    service = f"clocked-{direction}"
    start = time.time_ns() - 40 * MINUTE
    send_history(server, service, {"web-b": skew_s * SECOND}, start)

    report = why_window(server, start, service)
    [finding] = [f for f in report["findings"] if f["kind"] == "clock-skew"]
    assert finding["instance"] == "web-b"
    assert direction in finding["summary"]
    assert abs(finding["evidence"][0]["skew_ns"] - skew_s * SECOND) < SECOND
    top = report["suspects"][0]
    assert (top["service"], top["instance"]) == (service, "web-b")


def test_a_steady_offset_is_not_skew(server: RunningServer) -> None:
    service = "clocked-steady"
    start = time.time_ns() - 40 * MINUTE
    send_history(server, service, {}, start)
    report = why_window(server, start, service)
    assert [f for f in report["findings"] if f["kind"] == "clock-skew"] == []
