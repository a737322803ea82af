"""The resources and instrumentation scopes of a request, each stored once under a stable id."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate
from typing import Any

import numpy as np
import pyarrow as pa
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from stethoscope.model.schema import ATTRIBUTE, RESOURCES, SCOPES
from stethoscope.sources.otlp.columns import BadRecord, FlatAttributes, attributes_digest

UNKNOWN_SERVICE = "unknown_service"
# A sender repeats the same few resources and scopes in every request: their ids are computed
# once per decoding process, keyed by their serialized form.
IDENTITY_CACHE = 4096


@dataclass
class Records:
    """Every record of one signal in a request, with the ids of where each came from."""

    items: list[Any] = field(default_factory=list)
    # One (record count, resource id, scope id, service) per scope met, in record order.
    groups: list[tuple[int, int, int, str]] = field(default_factory=list)

    @property
    def resource_ids(self) -> list[int]:
        """Each record's resource id."""
        return [resource_id for n, resource_id, _, _ in self.groups for _ in range(n)]

    @property
    def scope_ids(self) -> list[int]:
        """Each record's scope id."""
        return [scope_id for n, _, scope_id, _ in self.groups for _ in range(n)]

    @property
    def services(self) -> list[str]:
        """Each record's service name."""
        return [service for n, _, _, service in self.groups for _ in range(n)]

    def columns(self) -> list[pa.Array]:
        """The resource_id, scope_id and service columns of the records."""
        # A few groups repeated over many records: made from one value per group.
        counts = np.array([n for n, _, _, _ in self.groups], np.int64)
        group_of = np.repeat(np.arange(len(self.groups)), counts)
        resource_ids = np.array([resource_id for _, resource_id, _, _ in self.groups], np.uint64)
        scope_ids = np.array([scope_id for _, _, scope_id, _ in self.groups], np.uint64)
        services = pa.array([service for _, _, _, service in self.groups], pa.string())
        return [
            pa.array(resource_ids[group_of], pa.uint64()),
            pa.array(scope_ids[group_of], pa.uint64()),
            services.take(pa.array(group_of)),
        ]


Triples = tuple[tuple[str, int, str], ...]  # an attribute set as (key, ValueType, text)
Row = tuple[Triples, str, str, str, int]  # the columns of a resource or scope row after its id


class Origins:
    """Resources and scopes met in one request; `tables()` gives one row for each."""

    def __init__(self) -> None:
        # The row of each resource and scope met, as a one-row batch of its table.
        self._resources: dict[int, pa.RecordBatch] = {}
        self._scopes: dict[int, pa.RecordBatch] = {}

    def gather(self, groups: Any, scope_field: str, record_field: str) -> Records:
        """All records under `groups` (e.g. resource_spans / scope_spans / spans)."""
        found = Records()
        for group in groups:
            resource_id, service = self._resource(group.resource, group.schema_url)
            for scoped in getattr(group, scope_field):
                scope_id = self._scope(scoped.scope, scoped.schema_url)
                items = getattr(scoped, record_field)
                found.items.extend(items)
                found.groups.append((len(items), resource_id, scope_id, service))
        return found

    def _resource(self, resource: Any, schema_url: str) -> tuple[int, str]:
        resource_id, row, batch = _resource_identity(
            schema_url, resource.SerializeToString(deterministic=True)
        )
        self._resources.setdefault(resource_id, batch)
        return resource_id, row[1]

    def _scope(self, scope: Any, schema_url: str) -> int:
        scope_id, _, batch = _scope_identity(
            schema_url, scope.SerializeToString(deterministic=True)
        )
        self._scopes.setdefault(scope_id, batch)
        return scope_id

    def tables(self) -> dict[str, pa.Table]:
        """The resources and scopes tables of the request."""
        return {
            "resources": _joined(self._resources, RESOURCES),
            "scopes": _joined(self._scopes, SCOPES),
        }


@lru_cache(maxsize=IDENTITY_CACHE)
def _resource_identity(schema_url: str, serialized: bytes) -> tuple[int, Row, pa.RecordBatch]:
    """The id, row (attributes, service, instance, schema URL, dropped) and its batch."""
    resource = Resource.FromString(serialized)
    triples = tuple(_single(resource.attributes).record(0))
    values = {key: text for key, _, text in triples}
    service = values.get("service.name") or UNKNOWN_SERVICE
    instance = values.get("service.instance.id", "")
    row = (triples, service, instance, schema_url, resource.dropped_attributes_count)
    resource_id = attributes_digest(schema_url, list(triples))
    return resource_id, row, _row_batch(resource_id, row, RESOURCES)


@lru_cache(maxsize=IDENTITY_CACHE)
def _scope_identity(schema_url: str, serialized: bytes) -> tuple[int, Row, pa.RecordBatch]:
    """The id, row (attributes, name, version, schema URL, dropped) and batch of a scope."""
    scope = InstrumentationScope.FromString(serialized)
    triples = tuple(_single(scope.attributes).record(0))
    scope_id = attributes_digest(f"{schema_url}\x1d{scope.name}\x1d{scope.version}", list(triples))
    row = (triples, scope.name, scope.version, schema_url, scope.dropped_attributes_count)
    return scope_id, row, _row_batch(scope_id, row, SCOPES)


def _single(key_values: Any) -> FlatAttributes:
    attributes = FlatAttributes([key_values])
    if attributes.bad_records:
        # A resource or scope that cannot be kept makes the whole request unusable.
        raise BadRecord("resource or scope attribute nested too deeply")
    return attributes


def _row_batch(key: int, row: Row, schema: pa.Schema) -> pa.RecordBatch:
    """One resource or scope row, made once per identity: joining rows is cheaper."""
    return _origin_table({key: row}, schema).combine_chunks().to_batches()[0]


def _joined(batches: dict[int, pa.RecordBatch], schema: pa.Schema) -> pa.Table:
    if not batches:
        return _origin_table({}, schema)
    return pa.Table.from_batches([pa.concat_batches(list(batches.values()))])


def _origin_table(rows: dict[int, Row], schema: pa.Schema) -> pa.Table:
    entries = list(rows.items())
    triples = [triple for _, row in entries for triple in row[0]]
    offsets = list(accumulate((len(row[0]) for _, row in entries), initial=0))
    attributes = pa.StructArray.from_arrays(
        [
            pa.array([key for key, _, _ in triples], pa.string()),
            pa.array([value_type for _, value_type, _ in triples], pa.uint8()),
            pa.array([text for _, _, text in triples], pa.string()),
        ],
        fields=list(ATTRIBUTE),
    )
    return pa.Table.from_arrays(
        [
            pa.array([key for key, _ in entries], pa.uint64()),
            pa.array([row[1] for _, row in entries], pa.string()),
            pa.array([row[2] for _, row in entries], pa.string()),
            pa.array([row[3] for _, row in entries], pa.string()),
            pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), attributes),
            pa.array([row[4] for _, row in entries], pa.uint32()),
        ],
        schema=schema,
    )
