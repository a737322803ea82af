"""Decode workers: each request's own answer, whatever the concurrency; requests waiting together
decoded as one, a bad one refused alone; workers that die replaced; workers that yield the CPU
to the server; workers stop with the pool."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import psutil
import pytest
from conftest import good_spans, span_dict, traces_request

from stethoscope.errors import Overloaded, Rejected
from stethoscope.model.batch import SignalBatch
from stethoscope.sources.otlp.decodepool import DECODE_NICENESS, GROUP_REQUESTS, DecodePool

PROTOBUF = "application/x-protobuf"
LIMIT = 20 << 20


def _body(service: str, spans: int = 3) -> bytes:
    return bytes(traces_request(service, good_spans(service, spans)).SerializeToString())


def _decoded(pool: DecodePool, body: bytes) -> SignalBatch:
    """The batch the pool hands a consumer of this request alone (a consumer of its own: the
    request is never decoded with another)."""
    taken: list[SignalBatch] = []
    pool.ingest(taken.append, "traces", body, content_type=PROTOBUF, max_body_bytes=LIMIT)
    [batch] = taken
    return batch


def _services(pool: DecodePool, body: bytes) -> list[str]:
    return list(_decoded(pool, body).tables["spans"].column("service").to_pylist())


@pytest.fixture
def pool() -> Iterator[DecodePool]:
    decoder = DecodePool(2)
    yield decoder
    decoder.close()


def _workers(pool: DecodePool) -> list[psutil.Process]:
    """The pool's worker processes, all idle between the tests' requests."""
    return [psutil.Process(worker.pid) for worker in pool._idle]


def test_workers_decode_as_the_calling_thread_does(pool: DecodePool) -> None:
    body = _body("svc-a", spans=5)
    here, there = _decoded(DecodePool(0), body), _decoded(pool, body)
    assert there.accepted == here.accepted == 5
    assert there.tables.keys() == here.tables.keys()
    for name, table in here.tables.items():
        assert there.tables[name].equals(table), name


def test_each_concurrent_request_gets_its_own_answer(pool: DecodePool) -> None:
    # Eight threads through two workers: an answer read by the wrong thread shows up as a
    # request that gets another service's spans back.
    def decode(number: int) -> tuple[str, list[str]]:
        service = f"svc-{number}"
        return service, _services(pool, _body(service, spans=1 + number % 7))

    with ThreadPoolExecutor(8) as threads:
        answers = list(threads.map(decode, range(200)))
    for number, (service, services) in enumerate(answers):
        assert services == [service] * (1 + number % 7)
    assert len(_workers(pool)) == 2


def test_a_bad_body_is_refused_and_the_worker_goes_on(pool: DecodePool) -> None:
    with pytest.raises(Rejected) as refused:
        _decoded(pool, b"\xff\xff\xff")
    assert refused.value.status == 400
    assert _services(pool, _body("after-bad")) == ["after-bad"] * 3


def test_a_worker_killed_under_a_request_is_answered_retry_then_replaced(
    pool: DecodePool,
) -> None:
    assert _services(pool, _body("before"))
    [worker] = _workers(pool)
    # Stopped, then killed with the request in its pipe: that request alone is lost.
    os.kill(worker.pid, signal.SIGSTOP)
    outcome: list[BaseException | list[str]] = []

    def decode() -> None:
        try:
            outcome.append(_services(pool, _body("during")))
        except Overloaded as error:
            outcome.append(error)

    thread = threading.Thread(target=decode)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive(), "the request did not wait for the stopped worker"
    worker.kill()
    thread.join(10)
    [error] = outcome
    assert isinstance(error, Overloaded) and error.retry_after >= 1
    assert _services(pool, _body("after")) == ["after"] * 3
    assert worker.pid not in [process.pid for process in _workers(pool)]


def test_workers_run_at_a_lower_priority_than_the_server(pool: DecodePool) -> None:
    # The server's writer, alone on the way to the store, gets the CPU first (decodepool.py).
    with ThreadPoolExecutor(2) as threads:
        list(threads.map(lambda n: _services(pool, _body(f"s{n}")), range(8)))
    workers = _workers(pool)
    assert workers
    expected = min(19, os.nice(0) + DECODE_NICENESS)
    assert [worker.nice() for worker in workers] == [expected] * len(workers)


def test_closing_the_pool_stops_its_workers() -> None:
    pool = DecodePool(2)
    with ThreadPoolExecutor(2) as threads:
        list(threads.map(lambda n: _services(pool, _body(f"s{n}")), range(8)))
    workers = _workers(pool)
    assert workers
    pool.close()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == []
    with pytest.raises(Overloaded):
        _services(pool, _body("late"))


class _Store:
    """A consumer: the services of the spans of each batch it took, in order, and how many
    batches it was handed."""

    def __init__(self, refuse: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.calls = 0
        self._refuse = refuse

    def __call__(self, batch: SignalBatch) -> None:
        self.calls += 1
        if self._refuse:
            raise Overloaded("store busy", retry_after=1)
        self.batches.append(batch.tables["spans"].column("service").to_pylist())


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _in_line(bodies: list[tuple[bytes, _Store]]) -> list[SignalBatch | BaseException]:
    """Each body ingested by a thread of its own while the pool's one worker is held, so that
    all of them wait in line together: what each thread got."""
    pool = DecodePool(1)
    try:
        assert _services(pool, _body("start"))
        [worker] = _workers(pool)
        os.kill(worker.pid, signal.SIGSTOP)
        threads = ThreadPoolExecutor(len(bodies) + 1)
        futures: list[Future[SignalBatch]] = []
        try:
            held = threads.submit(_services, pool, _body("held"))
            _wait_for(lambda: not pool._idle)  # the first request holds the stopped worker
            for body, consumer in bodies:
                futures.append(
                    threads.submit(
                        pool.ingest,
                        consumer,
                        "traces",
                        body,
                        content_type=PROTOBUF,
                        max_body_bytes=LIMIT,
                    )
                )
            _wait_for(lambda: len(pool._waiting) == len(bodies))
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        assert held.result(10) == ["held"] * 3
        outcomes: list[SignalBatch | BaseException] = []
        for future in futures:
            error = future.exception(10)
            outcomes.append(error if error is not None else future.result())
        threads.shutdown()
        return outcomes
    finally:
        pool.close()


def test_requests_waiting_together_are_decoded_as_one_and_each_answered() -> None:
    store, other = _Store(), _Store()
    bodies = [(_body(f"svc-{n}", spans=n + 1), store) for n in range(GROUP_REQUESTS + 1)]
    bodies.append((_body("other", spans=2), other))  # another consumer: never mixed in
    outcomes = _in_line(bodies)
    for n, outcome in enumerate(outcomes[:-1]):
        assert isinstance(outcome, SignalBatch)
        assert (outcome.accepted, outcome.rejected) == (n + 1, 0)
    assert other.batches == [["other"] * 2]
    # Every span once; the requests that waited together were handed over in batches of
    # several, never more than GROUP_REQUESTS requests.
    services = [service for batch in store.batches for service in batch]
    sent = [f"svc-{n}" for n in range(len(bodies) - 1) for _ in range(n + 1)]
    assert sorted(services) == sent
    requests = [len(set(batch)) for batch in store.batches]
    assert max(requests) > 1
    assert max(requests) <= GROUP_REQUESTS


def test_a_bad_request_waiting_with_others_is_refused_alone() -> None:
    store = _Store()
    zero = bytes(16)
    partial = traces_request(
        "partial", [*good_spans("partial", 2), span_dict(zero, b"\x01" * 8, "bad-id")]
    ).SerializeToString()
    bodies = [
        (_body("before", 2), store),
        (b"\xff\xff\xff", store),  # malformed: refused, the others decoded as one
        (_body("after", 3), store),
    ]
    outcomes = _in_line(bodies)
    assert isinstance(outcomes[1], Rejected) and outcomes[1].status == 400
    assert [o.accepted for o in (outcomes[0], outcomes[2]) if isinstance(o, SignalBatch)] == [2, 3]
    assert [sorted(batch) for batch in store.batches] == [["after"] * 3 + ["before"] * 2]

    store = _Store()
    bodies = [(_body("before", 2), store), (partial, store), (_body("after", 3), store)]
    outcomes = _in_line(bodies)
    # A record rejected: each request decoded alone, its partial success exact.
    kept = [o for o in outcomes if isinstance(o, SignalBatch)]
    assert [(o.accepted, o.rejected) for o in kept] == [(2, 0), (2, 1), (3, 0)]
    assert "invalid trace id" in kept[1].reasons[0]
    assert sorted(store.batches) == [["after"] * 3, ["before"] * 2, ["partial"] * 2]


def test_a_refused_group_fails_every_request_in_it() -> None:
    store = _Store(refuse=True)
    outcomes = _in_line([(_body(f"svc-{n}", 2), store) for n in range(3)])
    assert store.calls == 1  # the three waited together: one batch, refused once
    assert all(isinstance(outcome, Overloaded) for outcome in outcomes)


def test_requests_waiting_when_the_pool_closes_are_told_to_retry_at_once() -> None:
    pool = DecodePool(1)
    assert _services(pool, _body("start"))
    [worker] = _workers(pool)
    os.kill(worker.pid, signal.SIGSTOP)
    threads = ThreadPoolExecutor(5)
    try:
        held = threads.submit(_services, pool, _body("held"))
        _wait_for(lambda: not pool._idle)
        waiting = [threads.submit(_services, pool, _body(f"w{n}")) for n in range(3)]
        _wait_for(lambda: len(pool._waiting) == 3)
        closing = threads.submit(pool.close)
        # Refused while the worker is still held: nobody waits for it to come back.
        for future in waiting:
            error = future.exception(5)
            assert isinstance(error, Overloaded) and error.retry_after >= 1
        assert not closing.done()  # close waits for the request the worker holds
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    assert held.result(10) == ["held"] * 3
    closing.result(10)
    threads.shutdown()
