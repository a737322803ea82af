"""The write-ahead log's on-disk promises (docs/formats/wal.md): replay once, cut torn tails."""

from __future__ import annotations

import struct
from pathlib import Path

import pyarrow as pa
import pytest

from stethoscope.model.batch import SignalBatch
from stethoscope.store.wal import MAGIC, RECORD_HEADER, WalConfig, WriteAheadLog


def batch(n: int) -> SignalBatch:
    table = pa.table({"x": pa.array(range(n), pa.int64())})
    return SignalBatch("traces", tables={"spans": table}, accepted=n)


def open_log(directory: Path, durable: list[tuple[int, int]] | None = None) -> WriteAheadLog:
    sink = durable if durable is not None else []
    return WriteAheadLog(
        WalConfig(directory=directory), lambda seq, b: sink.append((seq, b.accepted))
    )


def write_records(directory: Path, sizes: list[int]) -> list[tuple[int, int]]:
    durable: list[tuple[int, int]] = []
    log = open_log(directory, durable)
    list(log.recover(0))
    log.start()
    for size in sizes:
        log.append(batch(size))
    log.close()
    return durable


def replay(directory: Path, applied: int = 0) -> list[tuple[int, int]]:
    log = open_log(directory)
    return [(seq, b.accepted) for seq, b in log.recover(applied)]


def test_records_are_durable_in_order_and_replay_after_the_applied_position(tmp_path: Path):
    durable = write_records(tmp_path, [3, 5, 7])
    assert durable == [(1, 3), (2, 5), (3, 7)]
    assert replay(tmp_path) == [(1, 3), (2, 5), (3, 7)]
    assert replay(tmp_path, applied=2) == [(3, 7)]
    rows = next(iter(open_log(tmp_path).recover(0)))[1].tables["spans"]["x"].to_pylist()
    assert rows == [0, 1, 2]


def test_sequence_numbers_continue_across_restarts(tmp_path: Path):
    write_records(tmp_path, [1, 1])
    log = open_log(tmp_path)
    list(log.recover(0))
    log.start()
    assert log.append(batch(1)) == 3
    log.close()


def _last_segment(directory: Path) -> Path:
    return sorted(directory.glob("*.wal"))[-1]


def _cut_last_bytes(path: Path, n: int) -> None:
    path.write_bytes(path.read_bytes()[:-n])


def _flip_last_payload_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _append_garbage_header(path: Path) -> None:
    with open(path, "ab") as handle:
        handle.write(RECORD_HEADER.pack(10**6, 0, 99, 1, 1)[:10])


def _append_unknown_signal(path: Path) -> None:
    with open(path, "ab") as handle:
        handle.write(RECORD_HEADER.pack(0, 0, 4, 9, 0))


TORN_TAILS = {
    "torn payload": lambda path: _cut_last_bytes(path, 5),
    "torn header": _append_garbage_header,
    "bad checksum": _flip_last_payload_byte,
    "unknown signal code": _append_unknown_signal,
}


@pytest.mark.parametrize("damage", TORN_TAILS.values(), ids=TORN_TAILS.keys())
def test_a_damaged_tail_is_cut_and_everything_before_it_kept(tmp_path: Path, damage) -> None:
    write_records(tmp_path, [2, 4])
    damage(_last_segment(tmp_path))
    kept = replay(tmp_path)
    assert kept[0] == (1, 2)
    assert len(kept) in (1, 2)
    # The cut is permanent: a second recovery reads the same intact prefix.
    assert replay(tmp_path) == kept
    # And the log takes new records after the cut.
    durable = write_records(tmp_path, [9])
    assert durable[0][1] == 9 and durable[0][0] == kept[-1][0] + 1


def test_a_segment_without_the_magic_is_ignored(tmp_path: Path):
    (tmp_path / "00000000000000000001.wal").write_bytes(b"not a wal" + struct.pack("<I", 5))
    assert replay(tmp_path) == []


def test_released_segments_are_deleted_but_the_current_one_is_kept(tmp_path: Path):
    write_records(tmp_path, [1])  # segment starting at 1
    write_records(tmp_path, [1])  # segment starting at 2
    log = open_log(tmp_path)
    list(log.recover(0))
    log.start()  # segment starting at 3
    log.release(2)
    names = sorted(p.name for p in tmp_path.glob("*.wal"))
    assert names == ["00000000000000000003.wal"]
    log.close()
    assert (tmp_path / names[0]).read_bytes()[: len(MAGIC)] == MAGIC


def test_a_closed_log_whose_records_are_all_applied_leaves_no_segment(tmp_path: Path):
    durable: list[tuple[int, int]] = []
    log = open_log(tmp_path, durable)
    list(log.recover(0))
    log.start()
    log.append(batch(1))
    log.append(batch(1))
    log.close()
    log.release(1)  # record 2 is not applied yet: its segment stays
    assert len(list(tmp_path.glob("*.wal"))) == 1
    log.release(2)
    assert list(tmp_path.glob("*.wal")) == []


def test_a_failed_write_is_retryable_and_later_records_survive_recovery(tmp_path: Path):
    from stethoscope.errors import Overloaded

    durable: list[tuple[int, int]] = []
    log = open_log(tmp_path, durable)
    list(log.recover(0))
    log.start()
    log.append(batch(1))
    # The disk refuses the next write (as when it is full): the open segment cannot be written.
    segment = log._current_path
    log._file.close()
    log._file = open(segment, "rb")  # noqa: SIM115 - writing to it raises OSError
    with pytest.raises(Overloaded) as refused:
        log.append(batch(2))
    assert "write-ahead log write failed" in str(refused.value)
    log.append(batch(3))  # the log carries on in a fresh segment
    log.close()
    assert [accepted for _, accepted in durable] == [1, 3]
    assert [b for _, b in replay(tmp_path)] == [1, 3]


def test_releasing_while_recovering_keeps_the_segments_not_yet_read(tmp_path: Path):
    for _ in range(3):
        write_records(tmp_path, [1, 1])  # three segments: records 1-2, 3-4, 5-6
    log = open_log(tmp_path)
    seen = []
    for seq, _ in log.recover(0):
        seen.append(seq)
        log.release(seq)  # a replay commits in groups, each followed by a release
    assert seen == [1, 2, 3, 4, 5, 6]
    log.start()
    assert log.append(batch(1)) == 7
    log.release(6)
    assert [p.name for p in tmp_path.glob("*.wal")] == ["00000000000000000007.wal"]
    log.close()
