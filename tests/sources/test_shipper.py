"""The capture shipper against a real collector: delivery, outages, overflow, refusals."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from conftest import RunningServer, ServerFactory, free_port, stored_log_bodies
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint

from stethoscope.errors import UsageError
from stethoscope.sources.records import log_record
from stethoscope.sources.shipper import Shipper, ShipperConfig, ShipperStats


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def gauge(name: str, value: float) -> Metric:
    point = NumberDataPoint(time_unix_nano=time.time_ns(), as_double=value)
    return Metric(name=name, unit="1", gauge=Gauge(data_points=[point]))


def test_logs_and_metrics_arrive_under_the_channel_resource(server: RunningServer) -> None:
    shipper = Shipper(ShipperConfig(endpoint=server.otlp_url)).start()
    channel = shipper.channel(service="shipped", instance="box:1", scope="test")
    for number in range(3):
        channel.log(log_record(body=f"line {number}"))
    channel.log(log_record(body="it started", event_name="process.start"))
    channel.metrics([gauge("shipped.queue.depth", 7.0)])
    stats = shipper.close(timeout_s=10)

    assert (stats.sent_logs, stats.sent_metrics, stats.pending) == (4, 1, 0)
    assert stored_log_bodies(server, "shipped", expect=4) == [
        "it started",
        "line 0",
        "line 1",
        "line 2",
    ]
    records = server.steth_json("logs", "--service", "shipped")["logs"]
    assert {record["instance"] for record in records} == {"box:1"}
    assert [r["event_name"] for r in records if r["body"] == "it started"] == ["process.start"]
    metrics = server.steth_json("metrics", "--service", "shipped")
    assert "shipped.queue.depth" in {metric["name"] for metric in metrics["metrics"]}


def test_records_wait_for_a_late_collector_and_markers_fire_after_the_ack(
    start_server: ServerFactory,
) -> None:
    ports = (free_port(), free_port(), free_port())
    shipper = Shipper(ShipperConfig(endpoint=f"http://127.0.0.1:{ports[1]}")).start()
    channel = shipper.channel(service="late", instance="i", scope="test")
    acknowledged = threading.Event()
    for number in range(50):
        channel.log(log_record(body=f"early {number}"))
    channel.when_sent(acknowledged.set)

    time.sleep(1.0)  # the collector is not there: the sender retries, nothing is lost
    assert not acknowledged.is_set()
    assert shipper.stats().pending == 50
    assert not shipper.stats().collector_up

    server = start_server(ports=ports)
    assert acknowledged.wait(20)
    assert len(stored_log_bodies(server, "late", expect=50)) == 50
    stats = shipper.close()
    assert (stats.sent_logs, stats.dropped_logs, stats.pending) == (50, 0, 0)


def test_a_full_spool_drops_and_reports_the_loss_once_the_collector_is_back(
    start_server: ServerFactory,
) -> None:
    ports = (free_port(), free_port(), free_port())
    config = ShipperConfig(endpoint=f"http://127.0.0.1:{ports[1]}", spool_bytes=4000)
    shipper = Shipper(config).start()
    channel = shipper.channel(service="overflowing", instance="i", scope="test")
    for number in range(200):
        channel.log(log_record(body=f"record number {number} " + "x" * 40))
    stats = shipper.stats()
    assert stats.dropped_logs > 0
    assert stats.pending + stats.dropped_logs == 200
    assert stats.pending_bytes <= 4000
    assert not shipper.has_room()

    server = start_server(ports=ports)
    assert wait_for(lambda: shipper.stats().pending == 0, timeout=20)
    assert len(stored_log_bodies(server, "overflowing", expect=stats.pending + 1)) > 0
    events = server.steth_json("logs", "--service", "overflowing", "--limit", "1000")["logs"]
    overflow = [record for record in events if record["event_name"] == "capture.overflow"]
    assert len(overflow) == 1
    assert f"{stats.dropped_logs} records were dropped" in overflow[0]["body"]
    assert len(events) == stats.pending + 1
    shipper.close()


def test_a_collector_refusing_the_token_is_counted_not_retried(start_server: ServerFactory) -> None:
    server = start_server(token="right-token")
    config = ShipperConfig(endpoint=server.otlp_url, token="wrong-token")
    shipper = Shipper(config).start()
    channel = shipper.channel(service="refused", instance="i", scope="test")
    channel.log(log_record(body="nobody will store this"))
    assert wait_for(lambda: shipper.stats().rejected == 1)
    stats = shipper.close()
    assert (stats.sent_logs, stats.pending) == (0, 0)
    assert "401" in stats.last_error


def test_close_gives_up_in_time_and_says_what_was_not_sent() -> None:
    shipper = Shipper(ShipperConfig(endpoint=f"http://127.0.0.1:{free_port()}")).start()
    channel = shipper.channel(service="lonely", instance="i", scope="test")
    for number in range(10):
        channel.log(log_record(body=f"unsent {number}"))
    started = time.monotonic()
    stats: ShipperStats = shipper.close(timeout_s=1.0)
    assert time.monotonic() - started < 10
    assert stats.pending == 10
    assert stats.sent_logs == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"endpoint": "127.0.0.1:4318"}, "--endpoint", id="endpoint-without-scheme"),
        pytest.param({"spool_bytes": 0}, "spool_bytes", id="no-spool"),
        pytest.param({"batch_records": 0}, "batch_records", id="empty-batches"),
        pytest.param({"timeout_s": 0}, "timeout_s", id="zero-timeout"),
    ],
)
def test_bad_configuration_is_refused_at_start(changes: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Shipper(ShipperConfig(**changes))  # type: ignore[arg-type]
