"""`steth up`: the long-running collector — receivers, the pipeline, the query API.

The HTTP servers run on an asyncio loop in their own thread; the main thread owns signals, so
that SIGINT/SIGTERM stop intake first, then drain the pipeline into the store, then exit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from stethoscope.errors import UsageError
from stethoscope.server.api import api_app
from stethoscope.server.discovery import ServerAddresses, remove_addresses, write_addresses
from stethoscope.server.pipeline import IngestPipeline, PipelineConfig
from stethoscope.sources.otlp.decodepool import DecodePool
from stethoscope.sources.otlp.grpc_server import otlp_grpc_server
from stethoscope.sources.otlp.http import otlp_http_app
from stethoscope.sources.otlp.receiver import ReceiverLimits, Secret
from stethoscope.store.duckdb.store import DuckDBStore
from stethoscope.store.wal import WalConfig


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Everything `steth up` needs; `validate()` refuses unsafe or impossible settings."""

    data_dir: Path
    host: str = "127.0.0.1"
    grpc_port: int = 4317
    http_port: int = 4318
    ui_port: int = 4320
    token: Secret | None = None
    limits: ReceiverLimits = field(default_factory=ReceiverLimits)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    store_memory_limit: str = "384MB"

    def validate(self) -> None:
        for name in ("grpc_port", "http_port", "ui_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise UsageError(f"--{name.replace('_', '-')} must be 0-65535, got {port}")
        if self.token is None and not is_loopback(self.host):
            raise UsageError(
                f"refusing to listen on {self.host} without --token: anyone who can reach it "
                "could read and write your telemetry (use 127.0.0.1, or set --token/STETH_TOKEN)"
            )
        try:
            self.limits.validate()
            self.pipeline.validate()
        except ValueError as error:
            raise UsageError(str(error)) from None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _HttpServers:
    """The OTLP/HTTP and API uvicorn servers on one event loop in a background thread."""

    def __init__(self, config: ServerConfig, pipeline: IngestPipeline, decoder: DecodePool) -> None:
        self.otlp = _uvicorn(
            otlp_http_app(pipeline.submit, decoder, config.limits, config.token),
            config.host,
            config.http_port,
        )
        self.api = _uvicorn(
            api_app(pipeline, decoder, config.limits, config.token), config.host, config.ui_port
        )
        self._thread = threading.Thread(target=self._run, name="steth-http", daemon=True)
        self.failure: BaseException | None = None

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        for _ in range(int(timeout * 50)):
            if self.failure or (self.otlp.started and self.api.started):
                break
            if not self._thread.is_alive():
                break
            threading.Event().wait(0.02)
        if not (self.otlp.started and self.api.started):
            raise OSError(f"HTTP servers did not start: {self.failure or 'port in use?'}")

    def ports(self) -> tuple[int, int]:
        return _bound_port(self.otlp), _bound_port(self.api)

    def stop(self) -> None:
        self.otlp.should_exit = True
        self.api.should_exit = True
        self._thread.join(timeout=30)

    def _run(self) -> None:
        async def serve_both() -> None:
            await asyncio.gather(self.otlp.serve(), self.api.serve())

        try:
            asyncio.run(serve_both())
        except BaseException as error:  # reported to the main thread by start()
            self.failure = error


def _uvicorn(app: Any, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=10,
    )
    return uvicorn.Server(config)


def _bound_port(server: uvicorn.Server) -> int:
    sock: socket.socket = server.servers[0].sockets[0]
    return int(sock.getsockname()[1])


def run_server(config: ServerConfig, *, ready: threading.Event | None = None) -> int:
    """Run until SIGINT/SIGTERM; returns the exit code."""
    config.validate()
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    decoder = DecodePool(config.limits.decode_workers)
    store = DuckDBStore(config.data_dir, memory_limit=config.store_memory_limit)
    pipeline = IngestPipeline(store, WalConfig(directory=config.data_dir / "wal"), config.pipeline)
    pipeline.start()
    grpc_server, grpc_port = otlp_grpc_server(
        f"{config.host}:{config.grpc_port}", pipeline.submit, decoder, config.limits, config.token
    )
    http = _HttpServers(config, pipeline, decoder)
    try:
        grpc_server.start()
        http.start()
        http_port, api_port = http.ports()
        addresses = ServerAddresses(
            host=config.host, grpc_port=grpc_port, http_port=http_port, api_port=api_port
        )
        write_addresses(config.data_dir, addresses)
        _announce(config, addresses)
        if ready is not None:
            ready.set()
        while not stop.wait(0.5):
            if http.failure is not None:
                raise OSError(f"HTTP server failed: {http.failure}")
    finally:
        remove_addresses(config.data_dir)
        http.stop()
        grpc_server.stop(grace=10).wait()
        decoder.close()
        pipeline.close()
        store.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("steth: stopped; everything acknowledged is in the store", file=sys.stderr)
    return 0


def _announce(config: ServerConfig, addresses: ServerAddresses) -> None:
    lines = [
        f"steth: collecting into {config.data_dir}",
        f"  OTLP/gRPC  {addresses.host}:{addresses.grpc_port}",
        f"  OTLP/HTTP  http://{addresses.host}:{addresses.http_port}",
        f"  API        http://{addresses.host}:{addresses.api_port}",
        "  auth       bearer token required" if config.token else "  auth       none (loopback)",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)
