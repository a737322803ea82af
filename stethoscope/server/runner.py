"""`steth up`: the long-running collector — receivers, the pipeline, the query API.

The HTTP servers run on an asyncio loop in their own thread; the main thread owns signals, so
that SIGINT/SIGTERM stop intake first, then drain the pipeline into the store, then exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from stethoscope.errors import UsageError
from stethoscope.server.api import api_app
from stethoscope.server.discovery import ServerAddresses, remove_addresses, write_addresses
from stethoscope.server.pipeline import IngestPipeline, PipelineConfig
from stethoscope.sources.otlp.decodepool import DECODE_NICENESS, DecodePool
from stethoscope.sources.otlp.grpc_server import otlp_grpc_server
from stethoscope.sources.otlp.http import otlp_http_app
from stethoscope.sources.otlp.receiver import ReceiverLimits, Secret
from stethoscope.store.duckdb.rowgroups import ROW_GROUP_ROWS
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
    # DuckDB's buffer pool fills to its limit on a big store. Whole row groups are written
    # straight to the file, so it needs less: building a 10M-span store, 256 MB ingested as
    # fast as 320 MB (79.8k vs 78.0k spans/s; 384 MB: 80.0k) with the server's peak RSS 917
    # MiB instead of 968 (1,041); 5M log records: 958-963 instead of 1,012 MiB.
    store_memory_limit: str = "256MB"
    compact_store: bool = True  # seal spans and log records in Parquet segments (segments.py)

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

    def __init__(
        self,
        config: ServerConfig,
        pipeline: IngestPipeline,
        decoder: DecodePool,
        sockets: tuple[socket.socket, socket.socket],
    ) -> None:
        self.otlp = _uvicorn(otlp_http_app(pipeline.submit, decoder, config.limits, config.token))
        self.api = _uvicorn(api_app(pipeline, decoder, config.limits, config.token))
        self._sockets = sockets
        self._thread = threading.Thread(target=self._run, name="steth-http", daemon=True)
        self.failure: BaseException | None = None

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not (self.otlp.started and self.api.started) and time.monotonic() < deadline:
            if self.failure or not self._thread.is_alive():
                break
            time.sleep(0.02)
        if not (self.otlp.started and self.api.started):
            raise OSError(f"HTTP servers did not start: {self.failure!r}")

    def stop(self) -> None:
        self.otlp.should_exit = True
        self.api.should_exit = True
        self._thread.join(timeout=30)

    def _run(self) -> None:
        async def serve_both() -> None:
            otlp_socket, api_socket = self._sockets
            await asyncio.gather(
                self.otlp.serve(sockets=[otlp_socket]), self.api.serve(sockets=[api_socket])
            )

        try:
            asyncio.run(serve_both())
        except BaseException as error:  # reported to the main thread by start()
            self.failure = error


def _uvicorn(app: Any) -> uvicorn.Server:
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=10
    )
    return uvicorn.Server(config)


@contextlib.contextmanager
def _listening(host: str, port: int, what: str) -> Iterator[socket.socket]:
    """A bound socket, made here so that a busy port is one clear error, not a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise UsageError(
            f"cannot listen for {what} on {host}:{port}: {error.strerror} "
            "(another steth up on this port? choose another with its --*-port option)"
        ) from None
    with sock:
        yield sock


def _grpc_listening(config: ServerConfig, pipeline: IngestPipeline, decoder: DecodePool) -> Any:
    address = f"{config.host}:{config.grpc_port}"
    try:
        return otlp_grpc_server(address, pipeline.submit, decoder, config.limits, config.token)
    except (OSError, RuntimeError) as error:
        raise UsageError(
            f"cannot listen for OTLP/gRPC on {address}: {error} "
            "(another steth up on this port? choose another with --grpc-port)"
        ) from None


def run_server(config: ServerConfig, *, ready: threading.Event | None = None) -> int:
    """Run until SIGINT/SIGTERM; returns the exit code.

    Everything started is stopped in reverse order: intake first, then the decoders, then the
    pipeline drains into the store, which closes last.
    """
    config.validate()
    stop = threading.Event()
    with contextlib.ExitStack() as stack:
        for sig in (signal.SIGINT, signal.SIGTERM):
            stack.callback(signal.signal, sig, signal.signal(sig, lambda *_: stop.set()))
        http_sockets = (
            stack.enter_context(_listening(config.host, config.http_port, "OTLP/HTTP")),
            stack.enter_context(_listening(config.host, config.ui_port, "the API")),
        )
        store = DuckDBStore(
            config.data_dir,
            memory_limit=config.store_memory_limit,
            segment_rows=ROW_GROUP_ROWS if config.compact_store else 0,
        )
        stack.callback(store.close)
        pipeline = IngestPipeline(
            store, WalConfig(directory=config.data_dir / "wal"), config.pipeline
        )
        pipeline.start()
        stack.callback(pipeline.close)
        decoder = DecodePool(config.limits.decode_workers)
        stack.callback(decoder.close)
        grpc_server, grpc_port = _grpc_listening(config, pipeline, decoder)
        grpc_server.start()
        stack.callback(lambda: grpc_server.stop(grace=10).wait())
        http = _HttpServers(config, pipeline, decoder, http_sockets)
        stack.callback(http.stop)
        http.start()
        addresses = ServerAddresses(
            host=config.host,
            grpc_port=grpc_port,
            http_port=int(http_sockets[0].getsockname()[1]),
            api_port=int(http_sockets[1].getsockname()[1]),
        )
        write_addresses(config.data_dir, addresses)
        stack.callback(remove_addresses, config.data_dir)
        _announce(config, addresses)
        if ready is not None:
            ready.set()
        while not stop.wait(0.5):
            if http.failure is not None:
                raise OSError(f"HTTP server failed: {http.failure}")
    print("steth: stopped; everything acknowledged is in the store", file=sys.stderr)
    return 0


def _announce(config: ServerConfig, addresses: ServerAddresses) -> None:
    lines = [
        f"steth: collecting into {config.data_dir}",
        f"  OTLP/gRPC  {addresses.host}:{addresses.grpc_port}",
        f"  OTLP/HTTP  http://{addresses.host}:{addresses.http_port}",
        f"  API        http://{addresses.host}:{addresses.api_port}",
        "  auth       bearer token required" if config.token else "  auth       none (loopback)",
        f"  decoding   {_workers_text(config.limits.decode_workers)}",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)


def _workers_text(workers: int) -> str:
    if not workers:
        return "in the server's process"
    return f"{workers} worker process{'es' if workers > 1 else ''} at nice +{DECODE_NICENESS}"
