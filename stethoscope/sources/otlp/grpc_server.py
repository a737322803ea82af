"""OTLP/gRPC receiver: the three Export services on one grpcio server (grpcio handles gzip)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from stethoscope.errors import IngestError, Overloaded, Rejected
from stethoscope.sources.otlp.codec import decode_message, export_response
from stethoscope.sources.otlp.receiver import (
    Admission,
    Consumer,
    ReceiverLimits,
    Secret,
    grpc_code,
)

__all__ = ["otlp_grpc_server"]


def _abort(context: grpc.ServicerContext, error: IngestError) -> None:
    code = grpc_code(error)
    status = status_pb2.Status(code=code.value[0], message=str(error))
    if isinstance(error, Overloaded):
        # RetryInfo is what tells an OTLP exporter that UNAVAILABLE is worth retrying, and when.
        info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=error.retry_after))
        status.details.add().Pack(info)
    context.abort_with_status(rpc_status.to_status(status))


class _ExportService:
    """One Export method body shared by the three OTLP services."""

    def __init__(
        self,
        signal: str,
        consumer: Consumer,
        admission: Admission,
        token: Secret | None,
    ) -> None:
        self.signal = signal
        self.consumer = consumer
        self.admission = admission
        self.token = token

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC name
        try:
            self._check_auth(context)
            with self.admission:
                batch = decode_message(self.signal, request)
                if batch.accepted:
                    self.consumer(batch)
        except IngestError as error:
            _abort(context, error)
        return export_response(batch)

    def _check_auth(self, context: grpc.ServicerContext) -> None:
        if self.token is None:
            return
        metadata = dict(context.invocation_metadata())
        if not self.token.matches_bearer(metadata.get("authorization")):
            raise Rejected("missing or wrong bearer token", status=401)


_REGISTRARS: dict[str, Callable[[Any, grpc.Server], None]] = {
    "traces": trace_service_pb2_grpc.add_TraceServiceServicer_to_server,
    "logs": logs_service_pb2_grpc.add_LogsServiceServicer_to_server,
    "metrics": metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server,
}


def otlp_grpc_server(
    address: str, consumer: Consumer, limits: ReceiverLimits, token: Secret | None
) -> tuple[grpc.Server, int]:
    """A started-ready (not yet started) gRPC server bound to `address`, and its port."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=limits.max_inflight, thread_name_prefix="steth-grpc"),
        maximum_concurrent_rpcs=limits.max_inflight * 2,
        options=[
            ("grpc.max_receive_message_length", limits.max_body_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ],
    )
    admission = Admission(limits.max_inflight)
    for signal, register in _REGISTRARS.items():
        register(_ExportService(signal, consumer, admission, token), server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind OTLP/gRPC to {address}")
    return server, port

