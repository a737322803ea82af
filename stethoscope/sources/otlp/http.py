"""OTLP/HTTP receiver: POST /v1/traces, /v1/logs, /v1/metrics (protobuf or JSON, gzip)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from google.rpc import status_pb2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from stethoscope.errors import IngestError, Overloaded, Rejected
from stethoscope.sources.otlp.codec import encode_response, export_response
from stethoscope.sources.otlp.decodepool import Consumer, DecodePool
from stethoscope.sources.otlp.receiver import Admission, ReceiverLimits, Secret

# The google.rpc code in an HTTP error body matches what the gRPC receiver answers.
_GRPC_CODE_FOR_STATUS = {400: 3, 401: 16, 413: 8, 415: 3, 429: 14, 503: 14}


async def read_body(request: Request, limit: int) -> bytes:
    """The raw (possibly compressed) body, refusing more than `limit` bytes on the wire."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Rejected(f"body of {declared} bytes exceeds the {limit} byte limit", status=413)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(f"body exceeds the {limit} byte limit", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def error_response(error: IngestError, content_type: str) -> Response:
    """An OTLP error answer: a google.rpc.Status body in the request's encoding."""
    status = status_pb2.Status(code=_GRPC_CODE_FOR_STATUS.get(error.status, 2), message=str(error))
    body, media = encode_response(status, content_type)
    headers = {}
    if isinstance(error, Overloaded):
        headers["Retry-After"] = str(error.retry_after)
    return Response(body, status_code=error.status, media_type=media, headers=headers)


def check_auth(request: Request, token: Secret | None) -> None:
    """Rejected(401) unless the request carries the bearer token (when one is required)."""
    if token is not None and not token.matches_bearer(request.headers.get("authorization")):
        raise Rejected("missing or wrong bearer token", status=401)


def otlp_endpoint(
    signal: str,
    consumer: Consumer,
    decoder: DecodePool,
    limits: ReceiverLimits,
    admission: Admission,
    token: Secret | None,
) -> Callable[[Request], Awaitable[Response]]:
    """The handler for one signal's POST path."""

    async def endpoint(request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        try:
            check_auth(request, token)
            with admission:
                body = await read_body(request, limits.max_body_bytes)
                batch = await run_in_threadpool(
                    decoder.ingest,
                    consumer,
                    signal,
                    body,
                    content_type=content_type,
                    content_encoding=request.headers.get("content-encoding", ""),
                    max_body_bytes=limits.max_body_bytes,
                )
        except IngestError as error:
            return error_response(error, content_type)
        payload, media = encode_response(export_response(batch), content_type)
        return Response(payload, media_type=media)

    return endpoint


async def healthz(request: Request) -> Response:
    """200 once the server is ready (the app is only served when it is)."""
    return PlainTextResponse("ok\n")


def otlp_routes(
    consumer: Consumer, decoder: DecodePool, limits: ReceiverLimits, token: Secret | None
) -> list[Route]:
    """The OTLP/HTTP routes, sharing one in-flight bound."""
    admission = Admission(limits.max_inflight)
    return [
        Route(
            f"/v1/{signal}",
            otlp_endpoint(signal, consumer, decoder, limits, admission, token),
            methods=["POST"],
        )
        for signal in ("traces", "logs", "metrics")
    ] + [Route("/healthz", healthz, methods=["GET"])]


def otlp_http_app(
    consumer: Consumer, decoder: DecodePool, limits: ReceiverLimits, token: Secret | None
) -> Starlette:
    """The ASGI app served on the OTLP/HTTP port (4318)."""
    return Starlette(routes=otlp_routes(consumer, decoder, limits, token))
