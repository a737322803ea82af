"""The demo system: which processes, on which ports, started how, and stopped without orphans.

    loadgen-1 ──► gateway-1 ──┬──► catalog-1, catalog-2 (round-robin)
                              ├──► cart-1 ──► cart.db (SQLite)
                              └──► checkout-1 ──┬──► cart-1
                                                ├──► shipping-1 (Node.js, no OpenTelemetry)
                                                ├──► payment-1
                                                └──► orders.db (queue) ◄── worker-1 ──► shipping-1

Every process is its own program on its own free loopback port, started under
`steth run --service S --instance I --restart on-failure --probe URL` (so a crash is followed by
a restart, as under any supervisor), in its own process group, output to `<run_dir>/logs/I.log`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from stethoscope.demo.control import FAULT_FILE_ENV
from stethoscope.errors import UsageError

__all__ = ["INSTANCES", "SERVICES_ORDER", "DemoSystem", "Instance", "SystemConfig"]

SHIPPING_JS = Path(__file__).parent / "services" / "shipping.js"
HEALTH_POLL_S = 0.2


@dataclass(frozen=True)
class Instance:
    """One process of the demo: its service, its instance id, and whether it listens."""

    service: str
    name: str
    listens: bool = True


# In start order: dependencies before their callers; the load generator last (`start_load`).
INSTANCES = (
    Instance("shipping", "shipping-1"),
    Instance("payment", "payment-1"),
    Instance("cart", "cart-1"),
    Instance("catalog", "catalog-1"),
    Instance("catalog", "catalog-2"),
    Instance("checkout", "checkout-1"),
    Instance("gateway", "gateway-1"),
    Instance("worker", "worker-1", listens=False),
)
LOADGEN = Instance("loadgen", "loadgen-1", listens=False)
SERVICES_ORDER = tuple(dict.fromkeys(i.service for i in (*INSTANCES, LOADGEN)))


@dataclass(frozen=True, kw_only=True)
class SystemConfig:
    """Where the demo keeps its files, where it reports, and its bounds."""

    run_dir: Path
    endpoint: str  # the collector's OTLP/HTTP URL that every `steth run` reports to
    token: str | None = None
    load_rate: float = 4.0  # requests per second from the load generator
    start_timeout_s: float = 60.0
    stop_timeout_s: float = 10.0
    probe_every_s: float = 5.0
    python: str = sys.executable
    node: str = "node"

    def validate(self) -> None:
        """Raise UsageError naming the first impossible setting."""
        if self.load_rate <= 0:
            raise UsageError(f"load rate must be positive, got {self.load_rate}")
        for name in ("start_timeout_s", "stop_timeout_s", "probe_every_s"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.endpoint.startswith(("http://", "https://")):
            raise UsageError(f"endpoint must be an http(s) URL, got {self.endpoint!r}")


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DemoSystem:
    """The running processes; use as a context manager, or `start()` ... `stop()`."""

    config: SystemConfig
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    extra_args: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.config.validate()
        self.ports = {i.name: free_port() for i in INSTANCES if i.listens}
        for sub in ("logs", "control"):
            (self.config.run_dir / sub).mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> DemoSystem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- where things are ----------------------------------------------------------------------

    def url(self, instance: str) -> str:
        """http://127.0.0.1:PORT of a listening instance."""
        return f"http://127.0.0.1:{self.ports[instance]}"

    @property
    def gateway_url(self) -> str:
        """The entry point."""
        return self.url("gateway-1")

    def fault_file(self, instance: str) -> Path:
        """The control file an instance watches."""
        return self.config.run_dir / "control" / f"{instance}.json"

    def log_file(self, instance: str) -> Path:
        """Where an instance's output goes (through `steth run`, which also captures it)."""
        return self.config.run_dir / "logs" / f"{instance}.log"

    @property
    def cart_db(self) -> Path:
        """The cart service's SQLite store."""
        return self.config.run_dir / "cart.db"

    @property
    def queue_db(self) -> Path:
        """The order queue's SQLite file."""
        return self.config.run_dir / "orders.db"

    def instance(self, name: str) -> Instance:
        """The instance called `name` (the load generator included)."""
        for candidate in (*INSTANCES, LOADGEN):
            if candidate.name == name:
                return candidate
        raise UsageError(f"no instance {name!r}")

    # -- commands ------------------------------------------------------------------------------

    def command(self, instance: Instance) -> list[str]:
        """The program line of one instance, before `steth run` wraps it."""
        py = [self.config.python, "-m", f"stethoscope.demo.services.{instance.service}"]
        own = ["--instance", instance.name]
        if instance.listens:
            own += ["--port", str(self.ports[instance.name])]
        peers = {
            "gateway": [
                "--catalog", f"{self.url('catalog-1')},{self.url('catalog-2')}",
                "--cart", self.url("cart-1"), "--checkout", self.url("checkout-1"),
            ],
            "cart": ["--db", str(self.cart_db)],
            "checkout": [
                "--cart", self.url("cart-1"), "--payment", self.url("payment-1"),
                "--shipping", self.url("shipping-1"), "--queue", str(self.queue_db),
            ],
            "worker": ["--queue", str(self.queue_db), "--shipping", self.url("shipping-1")],
            "loadgen": ["--gateway", self.gateway_url, "--rate", str(self.config.load_rate)],
        }  # fmt: skip
        extra = self.extra_args.get(instance.name, [])
        if instance.service == "shipping":
            return [self.config.node, str(SHIPPING_JS), *own, *extra]
        return [*py, *own, *peers.get(instance.service, []), *extra]

    def supervised(self, instance: Instance) -> list[str]:
        """The command, wrapped in `steth run`."""
        command = self.command(instance)
        wrapper = [
            self.config.python, "-m", "stethoscope.cli.main", "run",
            "--service", instance.service, "--instance", instance.name,
            "--endpoint", self.config.endpoint, "--restart", "on-failure",
        ]  # fmt: skip
        if instance.listens:
            wrapper += ["--probe", f"{self.url(instance.name)}/healthz"]
            wrapper += ["--probe-every", f"{self.config.probe_every_s:g}s"]
        if self.config.token:
            wrapper += ["--token", self.config.token]
        return [*wrapper, "--", *command]

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> DemoSystem:
        """Start every service (not the load) and wait until each answers its health check."""
        try:
            for instance in INSTANCES:
                self.launch(instance)
            for instance in INSTANCES:
                self.wait_ready(instance)
        except BaseException:
            self.stop()
            raise
        return self

    def start_load(self) -> None:
        """Start the load generator."""
        self.launch(LOADGEN)

    def launch(self, instance: Instance) -> None:
        """Start one process in its own process group, output appended to its log file."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env[FAULT_FILE_ENV] = str(self.fault_file(instance.name))
        with open(self.log_file(instance.name), "ab") as out:
            self.processes[instance.name] = subprocess.Popen(
                self.supervised(instance),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # one group per process: stopped as a whole
            )

    def wait_ready(self, instance: Instance, *, timeout_s: float | None = None) -> None:
        """Until the instance answers /healthz (a worker: until it has run a moment)."""
        timeout_s = timeout_s or self.config.start_timeout_s
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            process = self.processes[instance.name]
            if process.poll() is not None:
                raise RuntimeError(
                    f"{instance.name} exited with {process.returncode}; see "
                    f"{self.log_file(instance.name)}"
                )
            if self.healthy(instance.name):
                return
            time.sleep(HEALTH_POLL_S)
        raise RuntimeError(f"{instance.name} was not ready within {timeout_s:g}s")

    def healthy(self, name: str) -> bool:
        """Whether an instance's process runs and (when it listens) answers /healthz with 200."""
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return False
        if not self.instance(name).listens:
            return True
        try:
            return httpx.get(f"{self.url(name)}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def restart(self, name: str, extra_args: list[str]) -> None:
        """Stop one instance and start it again with `extra_args` appended to its flags."""
        self.stop_one(name)
        self.extra_args[name] = list(extra_args)
        instance = self.instance(name)
        self.launch(instance)
        self.wait_ready(instance)

    def stop(self) -> None:
        """Stop everything: the load first, then every service at once (callers signalled
        first), so that shutdown takes one stop timeout, not one per process."""
        self.stop_one(LOADGEN.name)
        self._stop([instance.name for instance in reversed(INSTANCES)])

    def stop_one(self, name: str) -> None:
        """SIGTERM (which `steth run` forwards), then SIGKILL to whatever is left of the tree."""
        self._stop([name])

    def _stop(self, names: list[str]) -> None:
        running = [(n, self.processes.pop(n)) for n in names if n in self.processes]
        trees = {name: _descendants(process.pid) for name, process in running}
        for _, process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.stop_timeout_s
        for name, process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):  # then killed below
                process.wait(timeout=max(deadline - time.monotonic(), 0.0))
            for leftover in [*trees[name], *_descendants(process.pid)]:
                _kill(leftover)
            if process.poll() is None:
                process.kill()
            process.wait()

    def pids(self) -> list[int]:
        """Every process the demo runs right now (wrappers and their children)."""
        pids: list[int] = []
        for process in self.processes.values():
            pids.append(process.pid)
            pids.extend(p.pid for p in _descendants(process.pid))
        return pids


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def _kill(process: psutil.Process) -> None:
    try:
        process.kill()
        process.wait(timeout=5)
    except psutil.Error:
        pass
