"""The demo's control channel, as seen from inside a Python service: one fault file per instance.

The orchestrator writes `{"faults": {NAME: {PARAM: VALUE}}}` to the file named by
$DEMO_FAULT_FILE (atomically: temp file + rename); a daemon thread polls it every `POLL_S` and
applies what changed. A file rather than an admin HTTP endpoint, so that injecting a fault leaves
no request, span or log line of its own in what Stethoscope observes, and so that a fault read at
start-up (crash loop) survives the restarts it causes.

Faults every Python service honours here: latency, errors, hang, memory_leak (in
`FaultMiddleware`), crash, crash_loop, cpu_hog, stop_logging, clock_skew (in `FaultState`). The
service-specific ones (exception, wrong_result, worker_stall) are read with `FaultState.active`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "CRASH_EXIT_CODE",
    "FAULT_FILE_ENV",
    "POLL_S",
    "FaultMiddleware",
    "FaultState",
    "read_fault_file",
    "write_fault_file",
]

FAULT_FILE_ENV = "DEMO_FAULT_FILE"
POLL_S = 0.5
CRASH_EXIT_CODE = 70  # EX_SOFTWARE: "internal software error"
# A leaking instance stops growing here, so a forgotten fault cannot take the machine down.
LEAK_CAP_MB_DEFAULT = 512
HANG_CHECK_S = 0.2

log = logging.getLogger("demo.control")


def read_fault_file(path: Path) -> dict[str, dict[str, Any]]:
    """The faults in a fault file; {} when it is missing or torn."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    faults = document.get("faults") if isinstance(document, dict) else None
    return {str(k): dict(v) for k, v in faults.items()} if isinstance(faults, dict) else {}


def write_fault_file(path: Path, faults: Mapping[str, Mapping[str, Any]]) -> None:
    """Replace a fault file atomically, so the watcher never reads half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(f".tmp{os.getpid()}")
    temp.write_text(json.dumps({"faults": {k: dict(v) for k, v in faults.items()}}))
    os.replace(temp, path)


class FaultState:
    """The faults active on this instance, kept current from the fault file by a thread."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._faults: dict[str, dict[str, Any]] = {}
        self._cpu_stop: threading.Event | None = None
        self._skew_ns = 0
        self.leaked: list[bytes] = []
        self.leaked_bytes = 0

    @classmethod
    def from_env(cls) -> FaultState:
        """The state for the file named by $DEMO_FAULT_FILE (none: never any fault)."""
        name = os.environ.get(FAULT_FILE_ENV)
        return cls(Path(name) if name else None)

    def active(self, name: str) -> dict[str, Any] | None:
        """The parameters of fault `name` when it is active, else None."""
        return self._faults.get(name)

    def start(self) -> None:
        """Apply the file as it is at start-up (a crash loop raises here), then watch it."""
        self._install_clock()
        if self.path is None:
            return
        current = read_fault_file(self.path)
        if "crash_loop" in current:
            # What a bad config or a missing secret does at start-up: an uncaught exception.
            setting = current["crash_loop"].get("setting", "database.url")
            raise RuntimeError(f"could not load configuration: required setting {setting!r}")
        current.pop("crash", None)  # a crash already happened to an earlier run of this instance
        self._apply(current)
        threading.Thread(target=self._watch, name="fault-watch", daemon=True).start()

    def _watch(self) -> None:
        assert self.path is not None
        while True:
            time.sleep(POLL_S)
            self._apply(read_fault_file(self.path))

    def _apply(self, faults: dict[str, dict[str, Any]]) -> None:
        previous, self._faults = self._faults, faults
        for fatal in ("crash", "crash_loop"):  # a crash loop starts with a first crash
            if fatal in faults and fatal not in previous:
                reason = faults[fatal].get("reason", "invariant violated: negative stock count")
                logging.getLogger("demo").critical("fatal: %s; exiting", reason)
                logging.shutdown()
                os._exit(CRASH_EXIT_CODE)
        self._skew_ns = int(float(faults.get("clock_skew", {}).get("offset_s", 0)) * 1e9)
        # Silence everything: what a logging misconfiguration or a full disk does to a service.
        logging.disable(logging.CRITICAL if "stop_logging" in faults else logging.NOTSET)
        if "cpu_hog" in faults and self._cpu_stop is None:
            self._cpu_stop = threading.Event()
            for _ in range(int(faults["cpu_hog"].get("threads", 1))):
                threading.Thread(target=_burn, args=(self._cpu_stop,), daemon=True).start()
        elif "cpu_hog" not in faults and self._cpu_stop is not None:
            self._cpu_stop.set()
            self._cpu_stop = None
        if "memory_leak" not in faults and self.leaked:
            self.leaked, self.leaked_bytes = [], 0

    def _install_clock(self) -> None:
        """Shift the time of every log record by the clock-skew offset (0 unless injected)."""
        make_record = logging.getLogRecordFactory()

        def skewed(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make_record(*args, **kwargs)
            if self._skew_ns:
                record.created += self._skew_ns / 1e9
                record.msecs = (record.created - int(record.created)) * 1000
                if hasattr(record, "created_ns"):  # Python 3.13+ keeps the time in ns too
                    record.created_ns += self._skew_ns
            return record

        logging.setLogRecordFactory(skewed)

    def leak(self) -> None:
        """Keep some memory per request, as a cache that never evicts does."""
        params = self._faults.get("memory_leak")
        if params is None:
            return
        cap = int(params.get("max_mb", LEAK_CAP_MB_DEFAULT)) * 2**20
        size = int(params.get("kb_per_request", 256)) * 1024
        if self.leaked_bytes + size <= cap:
            self.leaked.append(b"x" * size)  # bytes are written, so the pages really count
            self.leaked_bytes += size


def _burn(stop: threading.Event) -> None:
    """Spin in pure Python: holds the GIL, so the service's own requests slow down too."""
    total = 0
    while not stop.is_set():
        for i in range(10_000):
            total += i * i
        total %= 1_000_003


ASGIApp = Callable[..., Any]
PASS_THROUGH = ("/healthz",)  # health checks are cheap paths that latency and errors spare


class FaultMiddleware:
    """ASGI middleware applying latency, errors, hang and memory_leak to every request."""

    def __init__(self, app: ASGIApp, *, state: FaultState, error_message: str) -> None:
        self.app = app
        self.state = state
        self.error_message = error_message

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        # A hang answers nothing and logs nothing; requests resume only once it is reverted.
        while state.active("hang") is not None:
            await asyncio.sleep(HANG_CHECK_S)
        if scope["path"] not in PASS_THROUGH:
            state.leak()
            latency = state.active("latency")
            if latency is not None:
                delay = float(latency.get("delay_ms", 500)) * random.uniform(0.8, 1.2)
                await asyncio.sleep(delay / 1000)
            errors = state.active("errors")
            if errors is not None and random.random() < float(errors.get("fraction", 0.5)):
                logging.getLogger("demo").error("%s (%s)", self.error_message, scope["path"])
                await _send_json(send, 500, {"error": "internal error"})
                return
        await self.app(scope, receive, send)


async def _send_json(send: Any, status: int, body: Mapping[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
