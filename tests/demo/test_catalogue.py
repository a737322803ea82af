"""The fault catalogue as `steth demo` presents and checks it, without running the system."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_steth

from stethoscope.demo.control import read_fault_file, write_fault_file
from stethoscope.demo.faults import CATALOGUE, resolve_target
from stethoscope.demo.system import INSTANCES

REQUIRED = {
    "latency", "errors", "exception", "crash", "crash_loop", "hang", "wrong_result",
    "worker_stall", "cpu_hog", "memory_leak", "config_drift", "store_down", "stop_logging",
    "clock_skew",
}  # fmt: skip


def test_the_catalogue_has_every_required_fault_once() -> None:
    names = [fault.name for fault in CATALOGUE]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED


@pytest.mark.parametrize("fault", CATALOGUE, ids=lambda f: f.name)
def test_each_default_target_is_an_instance_it_may_hit(fault: object) -> None:
    service, instance = resolve_target(fault, None)  # type: ignore[arg-type]
    assert (service, instance) in {(i.service, i.name) for i in INSTANCES}


def test_list_prints_every_fault_with_its_target() -> None:
    code, out, err = run_steth("demo", "--list")
    assert code == 0, err
    for fault in CATALOGUE:
        assert fault.name in out and fault.target in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault", "meteor"], "no fault 'meteor'"),
        (["--fault", "hang", "--target", "database"], "no service or instance 'database'"),
        (["--fault", "worker_stall", "--target", "cart"], "cannot target cart-1"),
        (["--fault", "config_drift", "--target", "payment-1"], "cannot target payment-1"),
        (["--fault", "hang", "--duration", "0s"], "--duration must be positive"),
        (["--fault", "hang", "--duration", "soon"], "soon"),
        (["--fault", "hang", "--rate", "0"], "--rate must be positive"),
    ],
    ids=["unknown-fault", "unknown-target", "wrong-service", "drift-needs-replica",
         "zero-duration", "bad-duration", "zero-rate"],
)  # fmt: skip
def test_bad_requests_are_refused_before_anything_starts(
    args: list[str], message: str, tmp_path: Path
) -> None:
    code, out, err = run_steth("demo", *args, "--data", str(tmp_path / "data"))
    assert code == 2
    assert message in err
    assert not (tmp_path / "data").exists()  # nothing was started


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, {}),
        ('{"faults": {"hang": {}', {}),
        ('["hang"]', {}),
        ('{"faults": "hang"}', {}),
        ('{"faults": {"latency": {"delay_ms": 5}}}', {"latency": {"delay_ms": 5}}),
    ],
    ids=["missing", "torn", "not-an-object", "faults-not-a-map", "one-fault"],
)
def test_a_fault_file_is_read_leniently(
    content: str | None, expected: dict[str, object], tmp_path: Path
) -> None:
    path = tmp_path / "i.json"
    if content is not None:
        path.write_text(content)
    assert read_fault_file(path) == expected


def test_a_fault_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "control" / "cart-1.json"
    write_fault_file(path, {"hang": {}})
    write_fault_file(path, {"latency": {"delay_ms": 10}})
    assert read_fault_file(path) == {"latency": {"delay_ms": 10}}
    assert [p.name for p in path.parent.iterdir()] == ["cart-1.json"]
