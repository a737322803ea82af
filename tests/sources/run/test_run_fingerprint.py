"""The start-up fingerprint: comparable across replicas, different when the setup differs."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from stethoscope.sources.run.fingerprint import (
    FingerprintLimits,
    collect_fingerprint,
    config_files,
    python_interpreter,
)

LIMITS = FingerprintLimits(packages_timeout_s=30)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[list[str], dict[str, str], Path]:
    (tmp_path / "app.conf").write_text("threads = 8\n")
    argv = ["sh", "-c", "true", "app.conf"]
    env = {"PATH": "/usr/bin:/bin", "LOG_LEVEL": "info"}
    return argv, env, tmp_path


def test_replicas_differing_only_by_host_and_steth_settings_share_a_digest(
    setup: tuple[list[str], dict[str, str], Path],
) -> None:
    argv, env, cwd = setup
    one = collect_fingerprint(argv, env | {"HOSTNAME": "a", "OTEL_SERVICE_NAME": "x"}, cwd, LIMITS)
    two = collect_fingerprint(argv, env | {"HOSTNAME": "b", "PWD": "/elsewhere"}, cwd, LIMITS)
    assert one["steth.fingerprint"] == two["steth.fingerprint"]
    assert one["process.environment"]["HOSTNAME"] == "a"  # kept in the event, not the digest


@pytest.mark.parametrize(
    "change",
    [
        pytest.param("config", id="config-file-content"),
        pytest.param("env", id="environment-value"),
        pytest.param("argv", id="argument"),
    ],
)
def test_a_different_setup_gives_a_different_digest(
    setup: tuple[list[str], dict[str, str], Path], change: str
) -> None:
    argv, env, cwd = setup
    before = collect_fingerprint(argv, env, cwd, LIMITS)["steth.fingerprint"]
    if change == "config":
        (cwd / "app.conf").write_text("threads = 16\n")
    elif change == "env":
        env = env | {"LOG_LEVEL": "debug"}
    else:
        argv = [*argv, "--verbose"]
    assert collect_fingerprint(argv, env, cwd, LIMITS)["steth.fingerprint"] != before


def test_config_files_are_bounded_by_size_and_count(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).write_text(name)
    (tmp_path / "big").write_bytes(b"x" * 100)
    argv = ["app", "a", "--opt=b", "big", "missing", "c"]
    limits = FingerprintLimits(max_config_files=2, max_config_bytes=10)
    assert config_files(argv, tmp_path, limits) == {
        "a": hashlib.sha256(b"a").hexdigest(),
        "b": hashlib.sha256(b"b").hexdigest(),
    }


def test_python_is_recognised_by_name_and_by_shebang(tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text(f"#!/usr/bin/env {Path(sys.executable).name}\nprint(1)\n")
    script.chmod(0o755)
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    assert python_interpreter([sys.executable, "x.py"], env, tmp_path) == Path(sys.executable)
    found = python_interpreter([str(script)], env, tmp_path)
    assert found is not None and found.name.startswith("python")
    assert python_interpreter(["sh", "-c", "true"], env, tmp_path) is None
