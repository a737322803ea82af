"""`steth up`: start the collector."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from stethoscope.cli import common
from stethoscope.errors import UsageError
from stethoscope.model.timeutil import parse_duration_ns


def register(subparsers: Any) -> None:
    """Add `up` to the CLI."""
    parser = subparsers.add_parser("up", help="run the collector (OTLP in, store, query API)")
    common.add_data_args(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--grpc-port", type=int, default=4317)
    parser.add_argument("--http-port", type=int, default=4318)
    parser.add_argument("--ui-port", type=int, default=4320, help="query API (and web UI) port")
    parser.add_argument(
        "--retention", default="7d", help="prune live data older than this (7d; 'off' keeps all)"
    )
    parser.add_argument(
        "--max-body", default="20", type=int, help="largest request body in MiB, decompressed (20)"
    )
    parser.add_argument(
        "--max-pending",
        default=160,
        type=int,
        help="MiB of acknowledged data waiting for the store before intake pauses (160)",
    )
    parser.add_argument(
        "--flush-interval",
        default=0.5,
        type=float,
        help="seconds the writer waits for more data before it stores what it has (0.5); "
        "under steady traffic rows may wait up to 2 s to fill whole DuckDB row groups",
    )
    parser.add_argument(
        "--decode-workers",
        type=int,
        default=None,
        help="processes decoding requests (2; 0 decodes in the server's own process), at a "
        "lower priority than the server so that its writer gets the cores first",
    )
    parser.add_argument(
        "--compact-store",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="seal spans and log records in ZSTD Parquet segments (the default; "
        "docs/formats/segments.md): ~0.6x the disk of DuckDB's tables, which "
        "--no-compact-store keeps them in for faster searches",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # The server's dependencies (grpc, uvicorn, DuckDB) load only when a server starts.
    from stethoscope.server.pipeline import PipelineConfig
    from stethoscope.server.runner import ServerConfig, run_server
    from stethoscope.sources.otlp.receiver import ReceiverLimits, Secret

    if args.decode_workers is not None and args.decode_workers < 0:
        raise UsageError(f"--decode-workers must be 0 or more, got {args.decode_workers}")
    secret = common.token(args)
    limits = ReceiverLimits(max_body_bytes=args.max_body * 1024 * 1024)
    if args.decode_workers is not None:
        limits = dataclasses.replace(limits, decode_workers=args.decode_workers)
    config = ServerConfig(
        data_dir=common.data_dir(args),
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        ui_port=args.ui_port,
        token=Secret(secret) if secret else None,
        limits=limits,
        pipeline=PipelineConfig(
            max_pending_bytes=args.max_pending * 1024 * 1024,
            flush_interval_s=args.flush_interval,
            retention_ns=None if args.retention == "off" else parse_duration_ns(args.retention),
        ),
        compact_store=args.compact_store,
    )
    os.makedirs(config.data_dir, exist_ok=True)
    return run_server(config)
