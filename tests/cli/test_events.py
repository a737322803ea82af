"""`steth templates`, `steth events` and instance states in `steth services`, end to end.

The real OpenTelemetry SDK sends to a real `steth up`; the CLI answers through the server's API
and, once the server is stopped, from the store opened read-only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RunningServer, ServerFactory, launch_server, run_steth
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

LINES = [
    "Connection to 10.0.0.5:5432 timed out after 30s",
    "Connection to 10.0.0.9:5432 timed out after 12s",
    "Connection to 10.0.0.7:5432 timed out after 9s",
    "payment service ready",
]
# Plain-token variables: only a restored miner puts the third line under the first one's id.
GENERALISED = [
    f"Loaded plugin {name} from the local cache" for name in ("foo_bar", "baz_qux", "qq_x")
]


def emit(server: RunningServer, service: str, records: Sequence[Mapping[str, Any]], *,
         instance: str = "i-1") -> None:  # fmt: skip
    """Send records with the SDK's OTLP/HTTP exporter and wait until the API shows them."""
    resource = Resource.create({"service.name": service, "service.instance.id": instance})
    provider = LoggerProvider(resource=resource)
    exporter = OTLPLogExporter(endpoint=f"{server.otlp_url}/v1/logs")
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("steth.tests")
    for record in records:
        logger.emit(**record)
    provider.shutdown()
    wait_for_logs(server, service, instance, len(records))


def wait_for_logs(server: RunningServer, service: str, instance: str, expect: int) -> None:
    deadline = time.monotonic() + 15
    with httpx.Client(base_url=server.api_url, timeout=10) as client:
        while time.monotonic() < deadline:
            found = client.get("/api/logs", params={"service": service}).json()["logs"]
            if sum(r["instance"] == instance for r in found) >= expect:
                return
            time.sleep(0.1)
    pytest.fail(f"{expect} records of {service}/{instance} never became visible")


def lifecycle(
    server: RunningServer, service: str, instance: str, *events: tuple[str, dict]
) -> None:
    emit(
        server,
        service,
        [{"body": name, "event_name": name, "attributes": attrs} for name, attrs in events],
        instance=instance,
    )


START = ("process.start", {"process.pid": 41, "process.command_args": ["python", "app.py"]})


@pytest.fixture(scope="module")
def fed(server: RunningServer) -> RunningServer:
    emit(server, "payments", [{"body": line} for line in LINES])
    emit(server, "probe", [{"body": "probe down", "attributes": {"event.name": "probe.state",
         "url.full": "http://127.0.0.1:9/health", "probe.state": "down"}}])  # fmt: skip
    lifecycle(server, "web", "web-1", START, ("process.exit", {"process.exit.code": 2}))
    lifecycle(server, "web", "web-2", START)
    lifecycle(server, "web", "web-3", START, ("process.restart", {"steth.restart_count": 1}),
              ("process.crash_loop", {"steth.restart_count": 5}))  # fmt: skip
    return server


def test_templates_json_via_the_api(fed: RunningServer) -> None:
    found = fed.steth_json("templates", "--service", "payments")["templates"]
    assert [(t["template"], t["count"]) for t in found] == [
        ("Connection to <*> timed out after <*>", 3),
        ("payment service ready", 1),
    ]
    assert found[0]["example"] == LINES[0] and len(found[0]["template_id"]) == 12
    assert found[0]["first_seen_ns"] <= found[0]["last_seen_ns"]
    records = fed.steth_json("logs", "--service", "payments")["logs"]
    mined = {r["body"]: (r["template_id"], r["template_params"]) for r in records}
    assert mined[LINES[1]] == (found[0]["template_id"], ["10.0.0.9:5432", "12s"])


def test_templates_text(fed: RunningServer) -> None:
    code, out, err = fed.steth("templates", "--service", "payments", "--limit", "1")
    assert code == 0, err
    words = " ".join(out.split())  # the template column is last: wrapped, it reads on
    assert "payments" in words and "Connection to <*> timed out after <*>" in words
    assert "e.g. Connection to 10.0.0.5:5432" in words and "ready" not in words


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("--service", "web", "--name", "process.exit"), ["process.exit"]),
        (("--service", "probe"), ["probe.state"]),  # sent only as the event.name attribute
        (("--service", "payments"), []),
    ],
    ids=["by name", "attribute only", "plain logs are no events"],
)
def test_events_json(fed: RunningServer, args: tuple[str, ...], names: list[str]) -> None:
    found = fed.steth_json("events", *args)["events"]
    assert [e["event_name"] for e in found] == names


def test_events_text(fed: RunningServer) -> None:
    code, out, err = fed.steth("events", "--service", "web")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 6
    exit_line = next(line for line in lines if "process.exit" in line)
    assert "web/web-1" in exit_line and "process.exit.code=2" in exit_line
    start_line = next(line for line in lines if "process.start" in line)
    assert "process.command_args=python app.py" in start_line


def test_services_show_instance_state(fed: RunningServer) -> None:
    [web] = [s for s in fed.steth_json("services")["services"] if s["service"] == "web"]
    states = {i["instance"]: (i["state"], i["exit_code"]) for i in web["instances"]}
    assert states == {
        "web-1": ("exited", 2),
        "web-2": ("running", None),
        "web-3": ("crash_loop", None),
    }
    assert {"first_seen_ns", "last_seen_ns"} <= set(web["instances"][0])  # kept as before
    [payments] = [s for s in fed.steth_json("services")["services"] if s["service"] == "payments"]
    assert payments["instances"][0]["state"] is None
    stats = httpx.get(f"{fed.api_url}/api/stats", timeout=10).json()["templates"]
    assert stats["services"] >= 3 and stats["unmined_records"] == 0
    code, out, err = fed.steth("services")
    assert code == 0, err
    assert "web-1 exited 2" in out and "web-2 running" in out and "web-3 crash loop" in out


@pytest.mark.parametrize(
    ("command", "bad", "message"),
    [
        ("templates", ("--limit", "0"), "--limit must be at least 1"),
        ("events", ("--limit", "-1"), "--limit must be at least 1"),
        ("events", ("--since", "yesterday-ish"), "not a time"),
    ],
    ids=["templates limit", "events limit", "bad since"],
)
def test_bad_arguments(
    fed: RunningServer, command: str, bad: tuple[str, ...], message: str
) -> None:
    code, _, err = fed.steth(command, *bad)
    assert code == 2 and message in err


def test_read_only_store_answers_the_same(start_server: ServerFactory) -> None:
    server = start_server()
    emit(server, "payments", [{"body": line} for line in LINES])
    lifecycle(server, "web", "web-1", START, ("process.exit", {"process.exit.signal": "SIGTERM"}))
    via_api = server.steth_json("templates")
    server.stop()
    assert not (server.data / "server.json").exists()
    assert server.steth_json("templates") == via_api
    events = server.steth_json("events", "--name", "process.exit")["events"]
    assert events[0]["attributes"]["process.exit.signal"] == "SIGTERM"
    [web] = [s for s in server.steth_json("services")["services"] if s["service"] == "web"]
    assert (web["instances"][0]["state"], web["instances"][0]["exit_signal"]) == (
        "exited",
        "SIGTERM",
    )
    code, out, _ = server.steth("templates", "--since", "1m")
    assert code == 0 and "Connection to <*> timed out after <*>" in " ".join(out.split())


def ids_by_body(server: RunningServer, service: str) -> dict[str, str]:
    records = server.steth_json("logs", "--service", service)["logs"]
    return {r["body"]: r["template_id"] for r in records}


def test_template_ids_survive_a_server_restart(tmp_path: Path) -> None:
    with launch_server(tmp_path) as first:
        emit(first, "loader", [{"body": line} for line in GENERALISED[:2]])
        before = ids_by_body(first, "loader")
    with launch_server(tmp_path) as second:
        emit(second, "loader", [{"body": GENERALISED[2]}])
        wait_for_logs(second, "loader", "i-1", 3)
        after = ids_by_body(second, "loader")
        [template] = second.steth_json("templates", "--service", "loader")["templates"]
    assert after[GENERALISED[2]] == before[GENERALISED[0]] == before[GENERALISED[1]]
    assert (template["template"], template["count"]) == (
        "Loaded plugin <*> from the local cache",
        3,
    )
    assert json.dumps(template["example"]) == json.dumps(GENERALISED[0])


def test_imported_records_get_templates(tmp_path: Path) -> None:
    """`steth import` straight into the store (no server) mines as the server does."""
    records = [
        {"timeUnixNano": str(1_700_000_000_000_000_000 + i), "body": {"stringValue": line}}
        for i, line in enumerate(LINES)
    ]
    export = {"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "old"}}]},
        "scopeLogs": [{"logRecords": records}],
    }]}  # fmt: skip
    path = tmp_path / "logs.jsonl"
    path.write_text(json.dumps(export) + "\n")
    data = str(tmp_path / "data")
    code, _, err = run_steth("import", str(path), "--data", data)
    assert code == 0, err
    code, out, err = run_steth("templates", "--json", "--data", data)
    assert code == 0, err
    found = json.loads(out)["templates"]
    assert [(t["template"], t["count"]) for t in found] == [
        ("Connection to <*> timed out after <*>", 3),
        ("payment service ready", 1),
    ]
