"""Decode workers: each request's own answer, whatever the concurrency; bad bodies refused;
workers that die replaced; workers stop with the pool."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
from conftest import good_spans, traces_request

from stethoscope.errors import Overloaded, Rejected
from stethoscope.sources.otlp.decodepool import DecodePool

PROTOBUF = "application/x-protobuf"
LIMIT = 20 << 20


def _body(service: str, spans: int = 3) -> bytes:
    return bytes(traces_request(service, good_spans(service, spans)).SerializeToString())


def _services(pool: DecodePool, body: bytes) -> list[str]:
    batch = pool.decode("traces", body, content_type=PROTOBUF, max_body_bytes=LIMIT)
    return list(batch.tables["spans"].column("service").to_pylist())


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
    here = DecodePool(0).decode("traces", body, content_type=PROTOBUF, max_body_bytes=LIMIT)
    there = pool.decode("traces", body, content_type=PROTOBUF, max_body_bytes=LIMIT)
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
        pool.decode("traces", b"\xff\xff\xff", content_type=PROTOBUF, max_body_bytes=LIMIT)
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
