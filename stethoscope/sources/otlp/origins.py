"""The resources and instrumentation scopes of a request, each stored once under a stable id."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pyarrow as pa
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from stethoscope.model.schema import RESOURCES, SCOPES
from stethoscope.sources.otlp.columns import BadRecord, FlatAttributes, attributes_digest

UNKNOWN_SERVICE = "unknown_service"
# A sender repeats the same few resources and scopes in every request: their ids are computed
# once per decoding process, keyed by their serialized form.
IDENTITY_CACHE = 4096


@dataclass
class Records:
    """Every record of one signal in a request, with the ids of where each came from."""

    items: list[Any] = field(default_factory=list)
    resource_ids: list[int] = field(default_factory=list)
    scope_ids: list[int] = field(default_factory=list)
    services: list[str] = field(default_factory=list)


class Origins:
    """Resources and scopes met in one request; `tables()` gives one row for each."""

    def __init__(self) -> None:
        self._resources: dict[int, tuple[Any, str, str, str, int]] = {}
        self._scopes: dict[int, tuple[Any, str, str, str, int]] = {}

    def gather(self, groups: Any, scope_field: str, record_field: str) -> Records:
        """All records under `groups` (e.g. resource_spans / scope_spans / spans)."""
        found = Records()
        for group in groups:
            resource_id, service = self._resource(group.resource, group.schema_url)
            for scoped in getattr(group, scope_field):
                scope_id = self._scope(scoped.scope, scoped.schema_url)
                items = getattr(scoped, record_field)
                n = len(items)
                found.items.extend(items)
                found.resource_ids.extend([resource_id] * n)
                found.scope_ids.extend([scope_id] * n)
                found.services.extend([service] * n)
        return found

    def _resource(self, resource: Any, schema_url: str) -> tuple[int, str]:
        resource_id, service, instance = _resource_identity(
            schema_url, resource.SerializeToString(deterministic=True)
        )
        if resource_id not in self._resources:
            self._resources[resource_id] = (
                resource.attributes,
                service,
                instance,
                schema_url,
                resource.dropped_attributes_count,
            )
        return resource_id, service

    def _scope(self, scope: Any, schema_url: str) -> int:
        scope_id = _scope_identity(schema_url, scope.SerializeToString(deterministic=True))
        if scope_id not in self._scopes:
            self._scopes[scope_id] = (
                scope.attributes,
                scope.name,
                scope.version,
                schema_url,
                scope.dropped_attributes_count,
            )
        return scope_id

    def tables(self) -> dict[str, pa.Table]:
        """The resources and scopes tables of the request."""
        return {
            "resources": _origin_table(self._resources, RESOURCES),
            "scopes": _origin_table(self._scopes, SCOPES),
        }


@lru_cache(maxsize=IDENTITY_CACHE)
def _resource_identity(schema_url: str, serialized: bytes) -> tuple[int, str, str]:
    """(resource id, service name, instance id) of a serialized Resource."""
    triples = _single(Resource.FromString(serialized).attributes).record(0)
    values = {key: text for key, _, text in triples}
    service = values.get("service.name") or UNKNOWN_SERVICE
    return attributes_digest(schema_url, triples), service, values.get("service.instance.id", "")


@lru_cache(maxsize=IDENTITY_CACHE)
def _scope_identity(schema_url: str, serialized: bytes) -> int:
    """The scope id of a serialized InstrumentationScope."""
    scope = InstrumentationScope.FromString(serialized)
    triples = _single(scope.attributes).record(0)
    return attributes_digest(f"{schema_url}\x1d{scope.name}\x1d{scope.version}", triples)


def _single(key_values: Any) -> FlatAttributes:
    attributes = FlatAttributes([key_values])
    if attributes.bad_records:
        # A resource or scope that cannot be kept makes the whole request unusable.
        raise BadRecord("resource or scope attribute nested too deeply")
    return attributes


def _origin_table(rows: dict[int, tuple[Any, str, str, str, int]], schema: pa.Schema) -> pa.Table:
    entries = list(rows.items())
    return pa.Table.from_arrays(
        [
            pa.array([key for key, _ in entries], pa.uint64()),
            pa.array([row[1] for _, row in entries], pa.string()),
            pa.array([row[2] for _, row in entries], pa.string()),
            pa.array([row[3] for _, row in entries], pa.string()),
            FlatAttributes([row[0] for _, row in entries]).to_arrow(),
            pa.array([row[4] for _, row in entries], pa.uint32()),
        ],
        schema=schema,
    )
