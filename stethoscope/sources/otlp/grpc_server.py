"""OTLP/gRPC receiver: the three Export services on one grpcio server (grpcio handles gzip)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from stethoscope.errors import IngestError, Overloaded, Rejected
from stethoscope.sources.otlp.codec import export_response
from stethoscope.sources.otlp.decodepool import Consumer, DecodePool
from stethoscope.sources.otlp.receiver import Admission, ReceiverLimits, Secret, grpc_code

__all__ = ["otlp_grpc_server"]


def _abort(context: grpc.ServicerContext, error: IngestError) -> None:
    code = grpc_code(error)
    status = status_pb2.Status(code=code.value[0], message=str(error))
    if isinstance(error, Overloaded):
        # RetryInfo is what tells an OTLP exporter that UNAVAILABLE is worth retrying, and when.
        delay = duration_pb2.Duration(seconds=error.retry_after)
        info = error_details_pb2.RetryInfo(retry_delay=delay)
        status.details.add().Pack(info)
    context.abort_with_status(rpc_status.to_status(status))


class _ExportService:
    """One Export method body shared by the three OTLP services; takes the raw request bytes."""

    def __init__(
        self,
        signal: str,
        consumer: Consumer,
        decoder: DecodePool,
        limits: ReceiverLimits,
        admission: Admission,
        token: Secret | None,
    ) -> None:
        self.signal = signal
        self.consumer = consumer
        self.decoder = decoder
        self.limits = limits
        self.admission = admission
        self.token = token

    def export(self, body: bytes, context: grpc.ServicerContext) -> Message:
        try:
            self._check_auth(context)
            with self.admission:
                batch = self.decoder.ingest(
                    self.consumer,
                    self.signal,
                    body,
                    content_type="application/x-protobuf",
                    max_body_bytes=self.limits.max_body_bytes,
                )
        except IngestError as error:
            _abort(context, error)
        return export_response(batch)

    def _check_auth(self, context: grpc.ServicerContext) -> None:
        if self.token is None:
            return
        metadata = dict(context.invocation_metadata())
        if not self.token.matches_bearer(metadata.get("authorization")):
            raise Rejected("missing or wrong bearer token", status=401)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


_SERVICES = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
}


def otlp_grpc_server(
    address: str,
    consumer: Consumer,
    decoder: DecodePool,
    limits: ReceiverLimits,
    token: Secret | None,
) -> tuple[grpc.Server, int]:
    """A gRPC server (not yet started) bound to `address`, and its port."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=limits.max_inflight, thread_name_prefix="steth-grpc"),
        maximum_concurrent_rpcs=limits.max_inflight * 2,
        options=[
            ("grpc.max_receive_message_length", limits.max_body_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            # Without this, a second collector could bind the same port and split the traffic.
            ("grpc.so_reuseport", 0),
        ],
    )
    admission = Admission(limits.max_inflight)
    for signal, service_name in _SERVICES.items():
        service = _ExportService(signal, consumer, decoder, limits, admission, token)
        # No request deserializer: the raw bytes go to a decode worker, parsed only there.
        method = grpc.unary_unary_rpc_method_handler(service.export, response_serializer=_serialize)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service_name, {"Export": method}),)
        )
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind OTLP/gRPC to {address}")
    return server, port
