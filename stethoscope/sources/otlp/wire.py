"""Protobuf records read field by field for many records at once, with numpy.

Reading a span's fields through its protobuf message object costs a Python object and a
method call per field and span. Here the records of a request sit in one buffer and are walked
together, one field of every record per step: a step reads each record's tag, finds where its
value starts and ends, and notes it. Only the common encodings are read (tags of one or two
bytes, each singular field at most once, known fields with their own wire type, unknown fields
of the plain wire types); a record with anything else is `unusual`, and the caller decodes its
request with protobuf instead, so that every input gives what message decoding gives.

Values are then read for all records at once, each with a single gather where it can be: fixed
width integers and ids through a view of the buffer as integers starting at every byte, texts as
pieces of the buffer made into one string array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

__all__ = [
    "FIXED32",
    "FIXED64",
    "LEN",
    "PAD",
    "VARINT",
    "Field",
    "Layout",
    "Walk",
    "integers_at",
    "strings_at",
    "utf8_strings",
    "varints",
]

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5
# Reads past a record's end (a tag, a varint) land here, never outside the buffer.
PAD = bytes(32)
_MAX_VARINT = 10
_TAGS = 1 << 14  # tags of one or two bytes: field numbers up to 2047
_MAX_LENGTH = (1 << 31) - 1


@dataclass(frozen=True)
class Field:
    """A field of a message type: its number, wire type and whether it repeats."""

    number: int
    wire_type: int
    repeated: bool = False


class Layout:
    """The fields of a message type that are read; other valid fields are skipped."""

    def __init__(self, *fields: Field) -> None:
        self.fields = fields
        self.slot_of = {field.number: slot for slot, field in enumerate(fields)}
        self.skip = len(fields)  # the slot of unknown fields
        self.bad = len(fields) + 1  # the slot of anything the walk leaves to protobuf
        slots = np.full(_TAGS, self.skip, np.int64)
        numbers, wire_types = np.arange(_TAGS) >> 3, np.arange(_TAGS) & 7
        slots[(numbers == 0) | ~np.isin(wire_types, [VARINT, FIXED64, LEN, FIXED32])] = self.bad
        for slot, field in enumerate(fields):
            slots[numbers == field.number] = self.bad  # with another wire type
            slots[(field.number << 3) | field.wire_type] = slot
        self.slots = slots
        # Repeated length-delimited fields with one-byte tags come in runs, hopped quickly.
        self.runs = [
            (slot, (field.number << 3) | LEN)
            for slot, field in enumerate(fields)
            if field.repeated and field.wire_type == LEN and field.number < 16
        ]
        self.single = np.array([not field.repeated for field in fields] + [False, False])
        self.repeated = np.array([field.repeated for field in fields] + [False, False])


class Walk:
    """Where each field of many records is, records given as [start, end) in one buffer.

    `buffer` must end with `PAD`. For a singular field, `at` is where its value starts (-1 when
    absent) and `size` its length in bytes (a length-delimited field's payload, a varint's
    encoding); a repeated length-delimited field gives (owner record, at, size) per item.
    """

    def __init__(
        self, buffer: np.ndarray, starts: np.ndarray, ends: np.ndarray, layout: Layout
    ) -> None:
        self.buffer = buffer
        self.layout = layout
        count = len(starts)
        self.unusual = np.zeros(count, bool)
        self._at = np.full((layout.bad + 1, count), -1, np.int64)
        self._size = np.zeros((layout.bad + 1, count), np.int64)
        self._pieces: list[tuple[np.ndarray, ...]] = []
        records = self._in_order(starts, ends)
        position, end = starts[records], ends[records]
        while len(records):
            position, end, records = self._step(position, end, records)
            for slot, tag in layout.runs:
                position, end, records = self._run(position, end, records, slot, tag)

    def _in_order(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Read records whose fields come in layout order; the others, to walk step by step.

        Encoders write fields in number order, so one pass over the layout, each field read
        where it is present, reads nearly every record in a few array operations per field.
        """
        if not len(starts):
            return np.zeros(0, np.int64)
        position = starts.copy()
        for slot, field in enumerate(self.layout.fields):
            while self._in_place(position, ends, slot, field) and field.repeated:
                pass
        others = np.flatnonzero(position != ends)
        if len(others):
            self._at[:, others] = -1
            self._size[:, others] = 0
            redo = np.zeros(len(starts), bool)
            redo[others] = True
            self._pieces = [
                tuple(part[~redo[piece[1]]] for part in piece) for piece in self._pieces
            ]
        return others

    def _in_place(self, position: np.ndarray, ends: np.ndarray, slot: int, field: Field) -> bool:
        """Read `field` in the records where it comes next; whether any had it."""
        buffer = self.buffer
        tag = (field.number << 3) | field.wire_type
        here = position < ends
        if tag < 0x80:
            here &= buffer[position] == tag
        else:  # two bytes (field numbers up to 2047)
            here &= buffer[position] == (tag & 0x7F) | 0x80
            here &= buffer[position + 1] == tag >> 7
        which = np.flatnonzero(here)
        if not len(which):
            return False
        value_at = position[which] + (1 if tag < 0x80 else 2)
        if field.wire_type in (FIXED64, FIXED32):
            data_at, size = value_at, np.full(len(which), 8 if field.wire_type == FIXED64 else 4)
            after = data_at + size
            lost = after > ends[which]
        else:
            data_at, size, lost = self._varint_at(value_at, field.wire_type == LEN)
            after = data_at + size
            lost |= after > ends[which]
        if lost.any():
            # A record left to the step walk ends up away from its end: position -1 (a pad byte).
            position[which[lost]] = -1
            kept = ~lost
            which, data_at, size, after = which[kept], data_at[kept], size[kept], after[kept]
        if field.repeated:
            self._pieces.append((np.full(len(which), slot), which, data_at, size))
        else:
            self._at[slot, which] = data_at
            self._size[slot, which] = size
        position[which] = after
        return True

    def _varint_at(
        self, value_at: np.ndarray, length: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(data start, size, unusual) of varint values, or of lengths (`length`) and data."""
        lead = self.buffer[value_at].astype(np.int64)
        data_at = value_at + 1 if length else value_at
        size = lead if length else np.ones(len(value_at), np.int64)
        lost = np.zeros(len(value_at), bool)
        long = np.flatnonzero(lead >= 0x80)
        if len(long):
            at = value_at[long]
            width, value = varints(self.buffer, at)
            unusual = (width == 0) | (
                (width == _MAX_VARINT) & (self.buffer[at + _MAX_VARINT - 1] > 1)
            )
            if length:
                unusual |= (width > 5) | (value > _MAX_LENGTH)
                data_at[long] = at + width
                size[long] = value.astype(np.int64) & _MAX_LENGTH
            else:
                size[long] = width
            lost[long] = unusual
        return data_at, size, lost

    def _step(
        self, position: np.ndarray, end: np.ndarray, records: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Read one field of every record still going; the records going on after it."""
        buffer, layout = self.buffer, self.layout
        tag = buffer[position].astype(np.int64)
        value_at = position + 1
        long_tag = tag >= 0x80
        if long_tag.any():
            second = buffer[position + 1].astype(np.int64)
            tag = np.where(long_tag, (tag & 0x7F) | (second << 7), tag)
            tag[long_tag & (second >= 0x80)] = 0  # three bytes or more: left to protobuf
            value_at += long_tag
        slot = layout.slots[tag]
        wire_type = tag & 7
        lead = buffer[value_at].astype(np.int64)
        delimited = wire_type == LEN
        size = np.where(wire_type == FIXED64, 8, np.where(wire_type == FIXED32, 4, 1))
        size[delimited] = lead[delimited]
        data_at = value_at + delimited
        long_value = (delimited | (wire_type == VARINT)) & (lead >= 0x80)
        if long_value.any():
            self._long_values(np.flatnonzero(long_value), value_at, delimited, data_at, size, slot)
        after = data_at + size
        problem = (slot == layout.bad) | (after > end)
        problem |= layout.single[slot] & (self._at[slot, records] >= 0)  # seen before
        fine = ~problem  # (an unusual record's fields may point past the buffer)
        self._at[slot[fine], records[fine]] = data_at[fine]
        self._size[slot[fine], records[fine]] = size[fine]
        repeated = layout.repeated[slot] & ~problem
        if repeated.any():
            self._pieces.append(
                (slot[repeated], records[repeated], data_at[repeated], size[repeated])
            )
        if problem.any():
            self.unusual[records[problem]] = True
        going = ~problem & (after < end)
        return after[going], end[going], records[going]

    def _run(
        self, position: np.ndarray, end: np.ndarray, records: np.ndarray, slot: int, tag: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hop over the items of a repeated field (one-byte tag and length) that come next."""
        buffer = self.buffer
        while len(records):
            size = buffer[position + 1].astype(np.int64)
            here = (buffer[position] == tag) & (size < 0x80)
            here &= position + 2 + size <= end
            which = np.flatnonzero(here)
            if not len(which):
                break
            data_at = position[which] + 2
            size = size[which]
            self._pieces.append((np.full(len(which), slot), records[which], data_at, size))
            position[which] = data_at + size
            going = position < end
            position, end, records = position[going], end[going], records[going]
        return position, end, records

    def _long_values(
        self,
        which: np.ndarray,
        value_at: np.ndarray,
        delimited: np.ndarray,
        data_at: np.ndarray,
        size: np.ndarray,
        slot: np.ndarray,
    ) -> None:
        """Varints (values or lengths) of more than one byte, at `value_at[which]`, in place."""
        at = value_at[which]
        width, value = varints(self.buffer, at)
        is_length = delimited[which]
        # A length needs at most 5 bytes and fits an int32; a 10-byte varint carries 1 bit.
        too_long = (width == 0) | (is_length & ((width > 5) | (value > _MAX_LENGTH)))
        too_long |= (width == _MAX_VARINT) & (self.buffer[at + _MAX_VARINT - 1] > 1)
        data_at[which] = np.where(is_length, at + width, at)
        size[which] = np.where(is_length, value.astype(np.int64) & _MAX_LENGTH, width)
        slot[which[too_long]] = self.layout.bad

    def at(self, number: int) -> np.ndarray:
        """Where each record's value of field `number` starts (-1: absent)."""
        return self._at[self.layout.slot_of[number]]

    def size(self, number: int) -> np.ndarray:
        """The byte length of each record's value of field `number` (0 when absent)."""
        return np.where(self.at(number) >= 0, self._size[self.layout.slot_of[number]], 0)

    def items(self, number: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(owner, at, size) of every item of a repeated field, in record and wire order."""
        slot = self.layout.slot_of[number]
        pieces = [piece for piece in self._pieces if (piece[0] == slot).any()]
        if not pieces:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        slots, owners, at, size = (np.concatenate(part) for part in zip(*pieces, strict=True))
        mine = slots == slot
        owners, at, size = owners[mine], at[mine], size[mine]
        order = np.argsort(owners, kind="stable")
        return owners[order], at[order], size[order]

    def varint(self, number: int) -> np.ndarray:
        """Each record's varint field `number` as uint64 (0 when absent)."""
        at = self.at(number)
        present = np.flatnonzero(at >= 0)
        values = np.zeros(len(at), np.uint64)
        values[present] = varints(self.buffer, at[present])[1]
        return values

    def fixed(self, number: int, width: int) -> np.ndarray:
        """Each record's fixed64 (`width` 8) or fixed32 (4) field `number` (0 when absent)."""
        at = self.at(number)
        present = np.flatnonzero(at >= 0)
        values = np.zeros(len(at), np.uint64)
        if len(present):
            values[present] = integers_at(self.buffer, at[present], width, "<")
        return values

    def ids(self, number: int, width: int, *, required: bool) -> tuple[np.ndarray, set[int]]:
        """Ids as big-endian uint64 words (one row per word), and the records with invalid ones.

        As `columns.checked_ids`: valid is `width` bytes, not all zero, or none when not
        `required`; invalid and missing ids read as zero.
        """
        size = self.size(number)
        exact = size == width
        at = np.where(exact, self.at(number), 0)
        words = np.stack([integers_at(self.buffer, at + k, 8, ">") for k in range(0, width, 8)])
        bad = ~exact | ~words.any(axis=0)
        if not required:
            bad &= size > 0
        words[:, bad | ~exact] = 0
        return words, set(np.flatnonzero(bad).tolist())

    def text(self, number: int) -> pa.Array | None:
        """Each record's string field `number` ("" when absent); None when one is not UTF-8."""
        return utf8_strings(self.buffer, self.at(number), self.size(number))


def utf8_strings(buffer: np.ndarray, at: np.ndarray, size: np.ndarray) -> pa.Array | None:
    """A string column from pieces of the buffer; None when one is not UTF-8."""
    strings = strings_at(buffer, at, size)
    try:
        strings.validate(full=True)
    except pa.ArrowInvalid:
        return None
    return strings


def strings_at(source: np.ndarray, at: np.ndarray, length: np.ndarray) -> pa.Array:
    """Pieces of `source` as one string array (UTF-8 not yet checked: `validate(full=True)`)."""
    offsets = np.zeros(len(at) + 1, np.int32)
    np.cumsum(length, out=offsets[1:])
    picks = np.repeat((at - offsets[:-1]).astype(np.int32), length)
    picks += np.arange(int(offsets[-1]), dtype=np.int32)
    data = source.take(picks)
    return pa.StringArray.from_buffers(len(at), pa.py_buffer(offsets), pa.py_buffer(data))


def integers_at(buffer: np.ndarray, at: np.ndarray, width: int, order: str) -> np.ndarray:
    """The `width`-byte integers (byte order `order`, "<" or ">") at `at`, as uint64."""
    # A view of the buffer as integers starting at every byte: one gather reads them all.
    view = np.ndarray((len(buffer) - width + 1,), np.dtype(f"{order}u{width}"), buffer, 0, (1,))
    return view[at].astype(np.uint64)


def varints(buffer: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(byte width, value as uint64) of the varints at `at`; width 0 when over 10 bytes."""
    first = buffer[at].astype(np.uint64)
    second = buffer[at + 1].astype(np.uint64)
    one = first < 0x80
    if (one | (second < 0x80)).all():  # one or two bytes, the usual widths: in a few steps
        two = (first & np.uint64(0x7F)) | (second << np.uint64(7))
        return np.where(one, 1, 2), np.where(one, first, two)
    value = np.zeros(len(at), np.uint64)
    width = np.zeros(len(at), np.int64)
    going = np.ones(len(at), bool)
    for k in range(_MAX_VARINT):
        if not going.any():
            break
        byte = buffer[at + k].astype(np.uint64)
        value |= np.where(going, (byte & np.uint64(0x7F)) << np.uint64(7 * k), np.uint64(0))
        width[going] = k + 1
        going &= byte >= 0x80
    width[going] = 0
    return width, value
