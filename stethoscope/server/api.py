"""The query HTTP API (port 4320): the same answers the CLI computes from a store, as JSON."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stethoscope.errors import IngestError, Overloaded, StethError, UsageError
from stethoscope.server.pipeline import IngestPipeline
from stethoscope.server.queryparams import (
    event_query_from,
    log_query_from,
    metric_query_from,
    template_query_from,
    trace_query_from,
    why_from,
    window_from,
)
from stethoscope.sources.importer import NDJSON
from stethoscope.sources.otlp.codec import SIGNALS
from stethoscope.sources.otlp.decodepool import DecodePool
from stethoscope.sources.otlp.http import check_auth, healthz, read_body
from stethoscope.sources.otlp.receiver import ReceiverLimits, Secret

Handler = Callable[[Request], Awaitable[Response]]


def _guarded(token: Secret | None, answer: Callable[[Request], Any]) -> Handler:
    """A handler that checks auth, runs `answer` off the event loop, and maps errors."""

    async def handler(request: Request) -> Response:
        try:
            check_auth(request, token)
            result = await run_in_threadpool(answer, request)
        except IngestError as error:
            return JSONResponse({"error": str(error)}, status_code=error.status)
        except UsageError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        except StethError as error:
            return JSONResponse({"error": str(error)}, status_code=500)
        if result is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(result)

    return handler


def api_routes(
    pipeline: IngestPipeline, decoder: DecodePool, limits: ReceiverLimits, token: Secret | None
) -> list[Route]:
    """The /api routes over the pipeline's store."""
    store = pipeline.store

    def services(request: Request) -> Any:
        return {"services": store.services(window_from(request.query_params))}

    def traces(request: Request) -> Any:
        query = trace_query_from(request.query_params, request.query_params.getlist("attr"))
        return {"traces": store.traces(query)}

    def trace(request: Request) -> Any:
        return store.trace(request.path_params["trace_id"])

    def trace_ids(request: Request) -> Any:
        return {"trace_ids": store.trace_ids(request.query_params.get("prefix", ""))}

    def logs(request: Request) -> Any:
        return {"logs": store.logs(log_query_from(request.query_params))}

    def metrics(request: Request) -> Any:
        return store.metrics(metric_query_from(request.query_params))

    def templates(request: Request) -> Any:
        return {"templates": store.templates(template_query_from(request.query_params))}

    def events(request: Request) -> Any:
        return {"events": store.events(event_query_from(request.query_params))}

    def why(request: Request) -> Any:
        from stethoscope.analysis.why import explain, scope_for

        since, until, baseline, service = why_from(request.query_params)
        return explain(store, scope_for(since, until, baseline=baseline, service=service)).to_json()

    def stats(request: Request) -> Any:
        return {
            **dataclasses.asdict(pipeline.stats),
            "templates": dataclasses.asdict(pipeline.templater.stats()),
        }

    def import_lines(signal: str, body: bytes) -> dict[str, Any]:
        """Ingest each line of an NDJSON body; answer per line once all of it is visible.

        A line refused as bad data is reported and the others go on; when the collector is
        overloaded the lines not yet taken are reported as to retry, so a client re-sends only
        those and nothing is stored twice.
        """
        results: list[dict[str, Any]] = []
        seqs: list[int] = []
        retry_after = None
        lines = [line for line in body.split(b"\n") if line.strip()]
        for line in lines:
            try:
                batch = decoder.ingest(
                    lambda taken: seqs.append(pipeline.submit(taken)),
                    signal,
                    line,
                    content_type="application/json",
                    max_body_bytes=limits.max_body_bytes,
                    imported=True,
                )
            except Overloaded as error:
                retry_after = error.retry_after
                break
            except IngestError as error:
                results.append({"error": str(error)})
                continue
            results.append(
                {"accepted": batch.accepted, "rejected": batch.rejected, "reasons": batch.reasons}
            )
        if seqs:
            # Taken is durable: a store too slow to show it yet must not make the client resend.
            with contextlib.suppress(Overloaded):
                pipeline.wait_visible(max(seqs))
        return {"lines": results, "retry_after": retry_after}

    async def import_endpoint(request: Request) -> Response:
        signal = request.path_params["signal"]
        content_type = request.headers.get("content-type", "application/json")
        try:
            check_auth(request, token)
            if signal not in SIGNALS:
                raise UsageError(f"unknown signal {signal!r} (one of: {', '.join(SIGNALS)})")
            body = await read_body(request, limits.max_body_bytes)
            if content_type.startswith(NDJSON):
                answer = await run_in_threadpool(import_lines, signal, body)
                return JSONResponse(answer)
            batch = await run_in_threadpool(
                decoder.ingest,
                pipeline.submit_visible,
                signal,
                body,
                content_type=content_type,
                content_encoding=request.headers.get("content-encoding", ""),
                max_body_bytes=limits.max_body_bytes,
                imported=True,
            )
        except IngestError as error:
            headers = {}
            if isinstance(error, Overloaded):
                headers["Retry-After"] = str(error.retry_after)
            return JSONResponse({"error": str(error)}, status_code=error.status, headers=headers)
        except UsageError as error:
            return JSONResponse({"error": str(error)}, status_code=404)
        return JSONResponse(
            {"accepted": batch.accepted, "rejected": batch.rejected, "reasons": batch.reasons}
        )

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/api/services", _guarded(token, services)),
        Route("/api/traces", _guarded(token, traces)),
        Route("/api/traces/{trace_id}", _guarded(token, trace)),
        Route("/api/trace-ids", _guarded(token, trace_ids)),
        Route("/api/logs", _guarded(token, logs)),
        Route("/api/metrics", _guarded(token, metrics)),
        Route("/api/templates", _guarded(token, templates)),
        Route("/api/events", _guarded(token, events)),
        Route("/api/why", _guarded(token, why)),
        Route("/api/stats", _guarded(token, stats)),
        Route("/api/import/{signal}", import_endpoint, methods=["POST"]),
    ]


def api_app(
    pipeline: IngestPipeline, decoder: DecodePool, limits: ReceiverLimits, token: Secret | None
) -> Starlette:
    """The ASGI app served on the API port (4320)."""
    return Starlette(routes=api_routes(pipeline, decoder, limits, token))
