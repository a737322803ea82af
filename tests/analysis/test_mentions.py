"""A service named in another service's new warnings is suspected before the writer."""

from __future__ import annotations

import time

from conftest import RunningServer, stored_log_bodies

from stethoscope.model.timeutil import format_ns
from stethoscope.sources.records import SEVERITY, log_record
from stethoscope.sources.shipper import Shipper, ShipperConfig

SECOND = 1_000_000_000
MINUTE = 60 * SECOND


def test_the_service_a_warning_names_ranks_above_the_one_that_noticed(
    server: RunningServer,
) -> None:
    start = time.time_ns() - 40 * MINUTE
    shipper = Shipper(ShipperConfig(endpoint=server.otlp_url)).start()
    worker = shipper.channel(service="orders-worker", instance="w-1", scope="test")
    payments = shipper.channel(service="payments", instance="p-1", scope="test")
    for step in range(180):
        at = start + step * 10 * SECOND
        payments.log(log_record(body=f"charged order o-{step}", time_ns=at))
        if at < start + 20 * MINUTE:
            worker.log(log_record(body=f"shipped order o-{step}", time_ns=at))
        else:  # payments answers, but without what the worker needs: nothing fails there
            body = f"order o-{step} has no payments reference, parked"
            worker.log(log_record(body=body, time_ns=at, severity_number=SEVERITY["WARN"]))
    assert shipper.close(timeout_s=30).pending == 0
    assert len(stored_log_bodies(server, "orders-worker", expect=180)) == 180

    report = server.steth_json(
        "why",
        "--since", format_ns(start + 20 * MINUTE),
        "--until", format_ns(start + 30 * MINUTE),
        "--baseline", f"{format_ns(start)}..{format_ns(start + 20 * MINUTE)}",
    )  # fmt: skip
    ranked = [suspect["service"] for suspect in report["suspects"]]
    assert ranked[:2] == ["payments", "orders-worker"]
    assert "named-in-logs" in report["suspects"][0]["reasons"]
    assert "no payments reference" in report["suspects"][0]["evidence"][0]["summary"]
