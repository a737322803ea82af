"""What every Python demo service shares: flags, logging, the fault channel, serving."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from stethoscope.demo.control import FaultMiddleware, FaultState

__all__ = ["LOG_FORMAT", "build_app", "client", "configure_logging", "parse_flags", "serve"]

# An ordinary Python logging line: `2026-11-25 19:45:00,123 INFO [catalog] listed 20 products`.
LOG_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"
# Every outgoing call has a deadline, so a hung dependency becomes a timeout, not a pile-up.
DEFAULT_TIMEOUT_S = 3.0


def parse_flags(
    description: str, argv: Sequence[str] | None, add: Sequence[tuple[str, dict[str, object]]]
) -> argparse.Namespace:
    """--port, --instance and the service's own flags (each `(flag, argparse kwargs)`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--instance", default="", help="this instance's name, for its logs")
    for flag, options in add:
        parser.add_argument(flag, **options)  # type: ignore[arg-type]
    return parser.parse_args(argv)


def configure_logging(service: str) -> logging.Logger:
    """Plain text logging to stderr at INFO; the logger named after the service."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr, force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per call is too chatty
    return logging.getLogger(service)


async def healthz(request: Request) -> Response:
    """200 while the process serves."""
    return PlainTextResponse("ok")


def build_app(routes: Sequence[BaseRoute], *, state: FaultState, error_message: str) -> Starlette:
    """A Starlette app with /healthz and the fault middleware.

    The fault middleware sits inside the app, so that the server span the auto-instrumentation
    opens around the app covers an injected delay or error as it would a real one.
    """
    middleware = [Middleware(FaultMiddleware, state=state, error_message=error_message)]
    return Starlette(routes=[Route("/healthz", healthz), *routes], middleware=middleware)


def client(timeout_s: float = DEFAULT_TIMEOUT_S) -> httpx.AsyncClient:
    """The HTTP client a service calls its dependencies with."""
    return httpx.AsyncClient(timeout=timeout_s)


def serve(app: Starlette, *, port: int, log: logging.Logger) -> None:
    """Serve on 127.0.0.1:`port` until SIGTERM/SIGINT."""
    log.info("listening on 127.0.0.1:%d", port)
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again for the handler
    # it found: make that one a no-op, so that a requested stop exits 0 as a real service does.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    # log_config=None keeps our logging set-up: uvicorn's own lines (and the tracebacks of
    # unhandled exceptions) come out in the same format.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    log.info("stopped")
