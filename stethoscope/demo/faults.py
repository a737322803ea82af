"""The fault catalogue, and injecting and reverting a fault with its ground truth recorded.

Three mechanisms, none touching Stethoscope's data:
- `file`: the fault goes into the target instance's fault file (`control.py` applies it);
- `restart`: the target replica is restarted with a wrong configuration value, and again with
  the right one to revert (config drift: the only cure is a restart);
- `store-lock`: the demo takes an exclusive lock on the cart's SQLite file, so every access of
  the cart service fails after its busy timeout, as when its database is down.

What the clock-skew fault can and cannot do: it shifts the time of the target's log records
(a log-record factory adds the offset, so both its printed lines and any OTLP log export carry
the skewed time; the Node.js service shifts its printed timestamps). The spans of the injected
OpenTelemetry SDK keep the system clock: shifting them would mean patching the SDK's clock,
which a fault in the demo's own code cannot do. So the visible symptom is log times that
disagree with their spans and with when the collector received them.

Every inject and revert appends one JSON line to the ground-truth file:
`{"action", "fault", "service", "instance", "time_ns", "params", "mechanism"}`. Analysis never
reads it; the evaluation compares its findings against it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from stethoscope.demo.control import read_fault_file, write_fault_file
from stethoscope.demo.system import INSTANCES, DemoSystem
from stethoscope.errors import UsageError

__all__ = [
    "CATALOGUE",
    "Fault",
    "FaultInjector",
    "Injection",
    "fault_named",
    "resolve_target",
]

Mechanism = Literal["file", "restart", "store-lock"]
PYTHON_SERVICES = ("gateway", "catalog", "cart", "checkout", "payment")
ANY_SERVICE = (*PYTHON_SERVICES, "shipping")
STORE_LOCK_TIMEOUT_S = 10.0


@dataclass(frozen=True, kw_only=True)
class Fault:
    """One failure the demo can cause: what it is, where, and what it visibly does."""

    name: str
    description: str
    affects: str  # what an operator would see
    target: str  # the default instance
    services: tuple[str, ...]  # the services whose instances it can hit
    params: Mapping[str, Any] = field(default_factory=dict)
    mechanism: Mechanism = "file"

    @property
    def inject_how(self) -> str:
        """How the fault is put in place, in words."""
        return {
            "file": "written to the target's fault file; applied within 0.5 s",
            "restart": "the target replica is restarted with the wrong value",
            "store-lock": "an exclusive lock is held on the cart's SQLite file",
        }[self.mechanism]

    @property
    def revert_how(self) -> str:
        """How the fault is taken away, in words."""
        return {
            "file": "removed from the fault file",
            "restart": "the replica is restarted with its normal configuration",
            "store-lock": "the lock is released",
        }[self.mechanism]


CATALOGUE: tuple[Fault, ...] = (
    Fault(
        name="latency",
        description="every request to the target is delayed by delay_ms (±20%)",
        affects="latency of the target and of every caller; loadgen p95 rises",
        target="cart-1",
        services=ANY_SERVICE,
        params={"delay_ms": 600},
    ),
    Fault(
        name="errors",
        description="the target answers a fraction of its requests with HTTP 500",
        affects="error spans at the target, 502s at checkout and gateway, loadgen failures",
        target="payment-1",
        services=ANY_SERVICE,
        params={"fraction": 0.5},
    ),
    Fault(
        name="exception",
        description="checkout's promotion code path raises KeyError (carts of 2+ products)",
        affects="tracebacks in checkout's log, 500 error spans, failed checkouts",
        target="checkout-1",
        services=("checkout",),
    ),
    Fault(
        name="crash",
        description="the target process logs a fatal line and exits (code 70), once",
        affects="a process.exit event, a restart by steth run, a short outage",
        target="checkout-1",
        services=ANY_SERVICE,
    ),
    Fault(
        name="crash_loop",
        description="the target fails at start-up on a missing setting, on every restart",
        affects="repeated process.exit/restart events, then a crash loop; target down",
        target="payment-1",
        services=ANY_SERVICE,
        params={"setting": "PAYMENT_PROCESSOR_URL"},
    ),
    Fault(
        name="hang",
        description="the target accepts requests and never answers; it logs nothing",
        affects="timeouts (504) at its callers, its spans and logs stop, probe goes down",
        target="catalog-1",
        services=ANY_SERVICE,
    ),
    Fault(
        name="wrong_result",
        description="payment approves charges (200) but leaves out the charge id",
        affects="no error at payment or checkout; the worker parks orders it cannot ship",
        target="payment-1",
        services=("payment",),
    ),
    Fault(
        name="worker_stall",
        description="the worker stops consuming the order queue, silently",
        affects="worker logs and shipments stop; checkout's 'queue depth' keeps growing",
        target="worker-1",
        services=("worker",),
    ),
    Fault(
        name="cpu_hog",
        description="a busy thread spins in the target (holding the GIL)",
        affects="process CPU near 100%, the target's latency rises",
        target="catalog-2",
        services=(*PYTHON_SERVICES, "worker"),
        params={"threads": 1},
    ),
    Fault(
        name="memory_leak",
        description="the target keeps kb_per_request KiB per request (capped at max_mb)",
        affects="the target's RSS grows steadily with traffic",
        target="gateway-1",
        services=ANY_SERVICE,
        params={"kb_per_request": 512, "max_mb": 512},
    ),
    Fault(
        name="config_drift",
        description="one catalog replica restarted with --currency EUR (its peer says USD)",
        affects="its fingerprint differs from its peer's; carts mixing currencies fail "
        "at checkout (409), EUR-only carts are declined by payment (422)",
        target="catalog-2",
        services=("catalog",),
        params={"flag": "--currency", "value": "EUR"},
        mechanism="restart",
    ),
    Fault(
        name="store_down",
        description="the cart's SQLite store is locked by another process (unavailable)",
        affects="'database is locked' errors at cart after 1 s, 503s, failed cart requests",
        target="cart-1",
        services=("cart",),
        mechanism="store-lock",
    ),
    Fault(
        name="stop_logging",
        description="the target stops writing log lines (it keeps serving)",
        affects="the target's log rate falls to zero while its spans continue",
        target="cart-1",
        services=(*ANY_SERVICE, "worker"),
    ),
    Fault(
        name="clock_skew",
        description="the target's log timestamps are shifted by offset_s",
        affects="the target's log records carry times off by offset_s from their spans "
        "and from when they were received (span times are unaffected: see docs)",
        target="catalog-1",
        services=(*ANY_SERVICE, "worker"),
        params={"offset_s": 120},
    ),
)


def fault_named(name: str) -> Fault:
    """The catalogue entry `name`, or a UsageError listing the names."""
    for fault in CATALOGUE:
        if fault.name == name:
            return fault
    raise UsageError(f"no fault {name!r}; one of: {', '.join(f.name for f in CATALOGUE)}")


def resolve_target(fault: Fault, target: str | None) -> tuple[str, str]:
    """(service, instance) for a target given as an instance, a service, or None (default)."""
    names = {i.name: i.service for i in INSTANCES}
    if target is None:
        instance = fault.target
    elif target in names:
        instance = target
    else:
        matching = [i for i, service in names.items() if service == target]
        if not matching:
            raise UsageError(f"no service or instance {target!r}; one of: {', '.join(names)}")
        instance = fault.target if names[fault.target] == target else matching[0]
    if names[instance] not in fault.services:
        raise UsageError(
            f"fault {fault.name} cannot target {instance}; services: {', '.join(fault.services)}"
        )
    return names[instance], instance


@dataclass
class Injection:
    """A fault in place: where, since when, and what undoes it."""

    fault: Fault
    service: str
    instance: str
    params: dict[str, Any]
    injected_ns: int
    lock: sqlite3.Connection | None = None


class FaultInjector:
    """Injects and reverts faults on a running `DemoSystem`, recording the ground truth."""

    def __init__(self, system: DemoSystem, ground_truth: Path) -> None:
        self.system = system
        self.ground_truth = ground_truth

    def inject(
        self, name: str, *, target: str | None = None, params: Mapping[str, Any] | None = None
    ) -> Injection:
        """Put fault `name` in place on `target` (default: the catalogue's)."""
        fault = fault_named(name)
        service, instance = resolve_target(fault, target)
        merged = {**fault.params, **(params or {})}
        injection = Injection(fault, service, instance, merged, injected_ns=time.time_ns())
        if fault.mechanism == "file":
            self._edit_file(instance, lambda faults: {**faults, name: merged})
        elif fault.mechanism == "restart":
            injection.injected_ns = time.time_ns()
            self.system.restart(instance, [str(merged["flag"]), str(merged["value"])])
        else:
            injection.lock = _lock_store(self.system.cart_db)
            injection.injected_ns = time.time_ns()
        self._record("inject", injection, injection.injected_ns)
        return injection

    def revert(self, injection: Injection) -> None:
        """Take an injected fault away."""
        fault = injection.fault
        if fault.mechanism == "file":
            name = fault.name
            self._edit_file(injection.instance, lambda f: {k: v for k, v in f.items() if k != name})
        elif fault.mechanism == "restart":
            self.system.restart(injection.instance, [])
        elif injection.lock is not None:
            injection.lock.execute("ROLLBACK")
            injection.lock.close()
            injection.lock = None
        self._record("revert", injection, time.time_ns())

    def _edit_file(self, instance: str, change: Any) -> None:
        path = self.system.fault_file(instance)
        write_fault_file(path, change(read_fault_file(path)))

    def _record(self, action: str, injection: Injection, time_ns: int) -> None:
        line = {
            "action": action,
            "fault": injection.fault.name,
            "service": injection.service,
            "instance": injection.instance,
            "time_ns": time_ns,
            "params": injection.params,
            "mechanism": injection.fault.mechanism,
        }
        self.ground_truth.parent.mkdir(parents=True, exist_ok=True)
        with open(self.ground_truth, "a") as out:
            out.write(json.dumps(line) + "\n")


def _lock_store(path: Path) -> sqlite3.Connection:
    """A connection holding an exclusive lock on a SQLite file until it rolls back."""
    db = sqlite3.connect(path, timeout=STORE_LOCK_TIMEOUT_S, check_same_thread=False)
    db.isolation_level = None  # transactions by hand: BEGIN EXCLUSIVE below
    db.execute("BEGIN EXCLUSIVE")
    return db
