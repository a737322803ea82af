"""A worker process over pipes of its own: answers with their bytes (whatever their sizes, call
after call), a failing call that leaves the worker working, a message cut short that is not
taken for a whole one, pipes that take a whole batch at once, a worker started nicer than its
caller, and a worker that leaves when its caller's end closes."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
from collections.abc import Iterator

import psutil
import pytest

from stethoscope.sources.pipeworker import (
    PIPE_BYTES,
    Handler,
    PipeWorker,
    WorkerFailed,
    WorkerLost,
    _read_exactly,
)


def _reverse(header: str, payload: bytearray) -> tuple[tuple[str, int], bytes | None]:
    if header == "fail":
        raise ValueError("asked to fail")
    if header == "exit":
        os._exit(3)
    return (header.upper(), os.getpid()), bytes(payload[::-1]) if payload else None


def _reverser() -> Handler:
    return _reverse


@pytest.fixture
def worker() -> Iterator[PipeWorker]:
    started = PipeWorker("steth-test-worker", _reverser)
    yield started
    started.stop()


def test_a_call_is_answered_with_its_bytes(worker: PipeWorker) -> None:
    payload = os.urandom(3 * PIPE_BYTES)  # larger than a pipe holds
    (text, pid), data = worker.call("abc", payload)
    assert (text, pid) == ("ABC", worker.pid) and pid != os.getpid()
    assert data == payload[::-1]
    assert worker.call("empty") == (("EMPTY", pid), None)


def test_calls_of_every_size_in_a_row_each_get_their_own_answer(worker: PipeWorker) -> None:
    """Sizes around the pipe's: a message read short or long would shift every later one."""
    sizes = [1, PIPE_BYTES - 1, PIPE_BYTES, 0, PIPE_BYTES + 1, 2 * PIPE_BYTES + 7, 5, 3]
    for number, size in enumerate(sizes):
        payload = os.urandom(size)
        (text, _), data = worker.call(f"call {number}", payload)
        assert text == f"CALL {number}"
        assert data == (payload[::-1] if size else None)


def test_a_message_cut_short_is_not_taken_for_a_whole_one() -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    os.write(writer.fileno(), b"0123456789" * 2)
    writer.close()  # as a worker killed mid-answer leaves it
    assert _read_exactly(reader, 10) == b"0123456789"
    with pytest.raises(EOFError):
        _read_exactly(reader, 20)  # 10 bytes are left


def test_a_failing_call_raises_and_the_worker_goes_on(worker: PipeWorker) -> None:
    with pytest.raises(WorkerFailed, match="ValueError: asked to fail"):
        worker.call("fail")
    assert worker.call("again", b"xy")[1] == b"yx"


def test_a_worker_that_dies_under_a_call_is_lost(worker: PipeWorker) -> None:
    with pytest.raises(WorkerLost):
        worker.call("exit")
    with pytest.raises(WorkerLost):
        worker.call("after")


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="pipe sizes are Linux's")
def test_the_pipes_take_a_whole_batch(worker: PipeWorker) -> None:
    for connection in (worker._calls, worker._answers):
        assert fcntl.fcntl(connection.fileno(), fcntl.F_GETPIPE_SZ) >= PIPE_BYTES


def test_a_worker_started_nicer_runs_at_a_lower_priority_than_its_caller() -> None:
    started = PipeWorker("steth-test-worker", _reverser, niceness=3)
    try:
        (_, pid), _ = started.call("which")
        assert psutil.Process(pid).nice() == min(19, os.nice(0) + 3)
    finally:
        started.stop()


def test_the_worker_leaves_when_its_caller_closes_the_pipes() -> None:
    started = PipeWorker("steth-test-worker", _reverser)
    started.call("warm")
    process = psutil.Process(started.pid)
    started._calls.close()  # as the kernel does for a caller killed -9
    process.wait(timeout=10)
    started.stop()
