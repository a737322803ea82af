"""A small three-tier system's traces as an OTLP/JSON recording, with faults on demand.

frontend -> api -> {cache, db}: every request is one trace of seven spans (server and client
spans on each side of each call). A fault changes where time is spent from `fault_at_s` on:
`network:<service>` adds time between the caller's client span and that service's server span;
`cpu:<service>` makes that service's own code and its client-side call overhead slower;
`errors:<service>` makes a third of its requests fail, and the failure travels up to the root;
`swallowed:<service>` makes them fail while its caller reports success; `skip:<cache|db>` makes
api silently stop calling that service in most requests (no error, just less work). Services
named in `uninstrumented` send no spans (a program in another language): only their callers'
client spans, which name the port they call, and a listening-socket metric as `steth run`
reports it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MS = 1_000_000
SECOND = 1_000_000_000
START_NS = 1_700_000_000 * SECOND  # 2023-11-14T22:13:20Z: historical, as an import keeps it


@dataclass(frozen=True)
class Fault:
    """What goes wrong, where, and from when (seconds after the recording starts)."""

    kind: str  # "network", "cpu", "errors", "swallowed", "skip" or "stop" (an api replica)
    service: str
    at_s: int
    instance: str | None = None  # only requests served by this replica (api-0, api-1...)
    until_s: int | None = None  # when it ends by itself (None: lasts to the end)


PORTS = {"api": 8080, "cache": 6379, "db": 5432}


def _span(trace: str, span: str, parent: str, name: str, kind: int, start: int, dur: int) -> Any:
    return {
        "status": {},
        "attributes": [],
        "traceId": trace,
        "spanId": span,
        "parentSpanId": parent,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + dur),
    }


class _Ids:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def trace(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def span(self) -> str:
        return f"{self.rng.getrandbits(64) | 1:016x}"


def _request(ids: _Ids, rng: random.Random, start: int, slow: dict[str, Any]) -> dict[str, list]:
    """One request's spans by service; `slow` maps 'net:svc'/'cpu:svc' to added ns, and
    'errors:'/'swallowed:' to the failing service."""
    trace = ids.trace()

    def work(service: str, base_ms: float) -> int:
        return int(rng.uniform(0.8, 1.2) * base_ms * MS) + slow.get(f"cpu:{service}", 0)

    def net(callee: str, caller: str) -> int:
        overhead = slow.get(f"cpu:{caller}", 0) // 4  # a starved caller is slow to send too
        return int(rng.uniform(0.3, 0.6) * MS) + slow.get(f"net:{callee}", 0) + overhead

    spans: dict[str, list] = {"frontend": [], "api": [], "cache": [], "db": []}
    skipped = slow.get("skip:") if "skip:" in slow and rng.random() < SKIPPED_SHARE else None
    cache_dur = work("cache", 1)
    db_dur = work("db", 4)
    cache_gap, db_gap = net("cache", "api"), net("db", "api")
    if skipped == "cache":
        cache_dur = cache_gap = 0
    if skipped == "db":
        db_dur = db_gap = 0
    api_self = work("api", 3)
    api_dur = api_self + cache_dur + cache_gap + db_dur + db_gap
    api_gap = net("api", "frontend")
    front_self = work("frontend", 2)
    front_dur = front_self + api_dur + api_gap

    root, call_api = ids.span(), ids.span()
    spans["frontend"] += [
        _span(trace, root, "", "GET /shop", 2, start, front_dur),
        _calls(
            "api",
            _span(trace, call_api, root, "GET", 3, start + front_self // 2, api_dur + api_gap),
        ),
    ]
    api_server = ids.span()
    at = start + front_self // 2 + api_gap // 2
    spans["api"].append(_span(trace, api_server, call_api, "GET /items", 2, at, api_dur))
    call_cache, call_db = ids.span(), ids.span()
    at += api_self // 2
    if skipped != "cache":
        spans["api"].append(
            _calls(
                "cache", _span(trace, call_cache, api_server, "GET", 3, at, cache_dur + cache_gap)
            )
        )
        spans["cache"].append(
            _span(trace, ids.span(), call_cache, "GET /get", 2, at + cache_gap // 2, cache_dur)
        )
    at += cache_dur + cache_gap
    if skipped != "db":
        spans["api"].append(
            _calls("db", _span(trace, call_db, api_server, "SELECT", 3, at, db_dur + db_gap))
        )
        spans["db"].append(
            _span(trace, ids.span(), call_db, "SELECT items", 2, at + db_gap // 2, db_dur)
        )
    for mode in ("errors", "swallowed"):
        failing = slow.get(f"{mode}:", "")
        if failing and rng.random() < 1 / 3:
            _fail(spans, str(failing), up_to_root=mode == "errors")
    return spans


CALLERS = {"cache": "api", "db": "api", "api": "frontend"}
SKIPPED_SHARE = 0.8  # of requests, under a skip fault


def _calls(callee: str, span: dict[str, Any]) -> dict[str, Any]:
    """A client span naming the address it calls, as HTTP and database clients do."""
    span["attributes"] = [
        {"key": "server.address", "value": {"stringValue": "127.0.0.1"}},
        {"key": "server.port", "value": {"intValue": str(PORTS[callee])}},
    ]
    return span


def _fail(spans: dict[str, list], service: str, *, up_to_root: bool) -> None:
    """Mark the service's server span failed, and with `up_to_root` every span above it."""
    error = {"code": 2, "message": "boom"}
    spans[service][0]["status"] = error
    if not up_to_root:
        return
    while service in CALLERS:
        service = CALLERS[service]
        for span in spans[service]:
            span["status"] = error


def write_recording(
    path: Path,
    *,
    minutes: int = 15,
    per_second: int = 2,
    fault: Fault | None = None,
    seed: int = 7,
    api_replicas: int = 1,
    uninstrumented: tuple[str, ...] = (),
    earlier: tuple[Fault, ...] = (),
) -> None:
    """Write the recording as Collector file-exporter lines (one request per line).

    With `api_replicas`, requests go round-robin to api-0, api-1...; `earlier` faults come and
    go before `fault` (an earlier incident).
    """
    rng = random.Random(seed)
    ids = _Ids(rng)
    with path.open("w") as out:
        for second in range(minutes * 60):
            if second % 60 == 0:  # steth run reports listening sockets every few seconds
                for service in uninstrumented:
                    out.write(json.dumps(_listening(service, second)) + "\n")
            for index in range(per_second):
                api = f"api-{(second * per_second + index) % api_replicas}"
                if (
                    fault
                    and fault.kind == "stop"
                    and second >= fault.at_s
                    and api == fault.instance
                ):
                    api = "api-0"  # the balancer took the stopped replica out
                start = START_NS + second * SECOND + index * (SECOND // per_second)
                effects: dict[str, Any] = {}
                for each in (*earlier, fault):
                    effects |= _slowdowns(each, second, api)
                spans = _request(ids, rng, start, effects)
                for service in uninstrumented:
                    spans[service] = []
                out.write(json.dumps(_export(spans, api)) + "\n")


def _slowdowns(fault: Fault | None, second: int, api: str) -> dict[str, Any]:
    """What the fault does to a request served by replica `api` at `second`."""
    if fault is None or second < fault.at_s or fault.instance not in (None, api):
        return {}
    if fault.until_s is not None and second >= fault.until_s:
        return {}
    if fault.kind == "stop":
        return {}
    if fault.kind in ("errors", "swallowed", "skip"):
        return {f"{fault.kind}:": fault.service}
    added = 200 * MS if fault.kind == "network" else 40 * MS
    return {f"{'net' if fault.kind == 'network' else 'cpu'}:{fault.service}": added}


def _listening(service: str, second: int) -> dict[str, Any]:
    """The listening-socket gauge `steth run` reports for a supervised program."""
    point = {
        "timeUnixNano": str(START_NS + second * SECOND),
        "asInt": "1",
        "attributes": [
            {"key": "network.connection.direction", "value": {"stringValue": "listen"}},
            {"key": "network.local.port", "value": {"stringValue": str(PORTS[service])}},
        ],
    }
    metric = {"name": "process.tcp.connections", "unit": "{connection}",
              "gauge": {"dataPoints": [point]}}  # fmt: skip
    resource = {
        "attributes": [
            {"key": "service.name", "value": {"stringValue": service}},
            {"key": "service.instance.id", "value": {"stringValue": f"{service}-0"}},
        ]
    }
    return {"resourceMetrics": [{"resource": resource, "scopeMetrics": [{"metrics": [metric]}]}]}


def _export(spans: dict[str, list], api: str) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": service}},
                        {
                            "key": "service.instance.id",
                            "value": {"stringValue": api if service == "api" else f"{service}-0"},
                        },
                    ]
                },
                "scopeSpans": [{"scope": {"name": "synthetic"}, "spans": items}],
            }
            for service, items in spans.items()
            if items
        ]
    }
