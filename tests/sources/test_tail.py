"""`steth tail` as a user runs it: a child process following real files into the real `steth up`.

Every case writes real files (appends, renames, truncations, deletions), waits until the lines
reach the store, and finally requires, with `steth logs --json`, that exactly the expected lines
arrived, each once.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RunningServer, cli_env, run_steth

WAIT_S = 20.0
FAST = ("--poll-interval", "50ms", "--rotate-wait", "300ms")


class Tail:
    """`steth tail` as a child process; its stderr collects in a file across restarts."""

    def __init__(self, endpoint: str, workdir: Path, service: str, patterns: list[str],
                 *extra: str, prefix: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.state = workdir / "state.json"
        self.stderr_path = workdir / "tail.err"
        self.command = [
            *prefix, sys.executable, "-m", "stethoscope.cli.main", "tail", *patterns,
            "--service", service, "--state", str(self.state),
            "--endpoint", endpoint, *FAST, *extra,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Tail:
        """Start, and wait until the first poll is done (it rewrites the state file)."""
        before = self.state.stat().st_ino if self.state.exists() else None
        with open(self.stderr_path, "ab") as err:
            self.process = subprocess.Popen(
                self.command, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
                env=cli_env(),
            )  # fmt: skip
        deadline = time.monotonic() + WAIT_S
        while not self.state.exists() or self.state.stat().st_ino == before:
            assert self.process.poll() is None, f"steth tail exited: {self.stderr()}"
            assert time.monotonic() < deadline, f"steth tail did not start: {self.stderr()}"
            time.sleep(0.02)
        return self

    def stop(self) -> str:
        """SIGTERM; require exit 0; the last line it printed (the summary)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        assert code == 0, f"steth tail exited {code}: {self.stderr()}"
        return self.stderr().strip().splitlines()[-1]

    def kill(self) -> None:
        """kill -9."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def offsets(self) -> dict[int, int]:
        """inode -> committed offset, from the state file (a rotated file keeps its first path)."""
        document = json.loads(self.state.read_text())
        return {entry["inode"]: entry["offset"] for entry in document["files"]}

    def committed(self, path: Path) -> int:
        """The committed offset of the file now at `path` (0 when it has none)."""
        return self.offsets().get(path.stat().st_ino, 0)


def stored_bodies(server: RunningServer, service: str) -> list[str]:
    """Bodies of the service's records in the store, sorted (fast: the API, no CLI start-up)."""
    response = httpx.get(f"{server.api_url}/api/logs",
                         params={"service": service, "limit": 100_000}, timeout=10)  # fmt: skip
    assert response.status_code == 200, response.text
    return sorted(str(record["body"]) for record in response.json()["logs"])


def wait_for_bodies(server: RunningServer, service: str, expected: list[str]) -> list[str]:
    """Poll until the store holds exactly `expected` (or time runs out); what it holds."""
    deadline = time.monotonic() + WAIT_S
    while True:
        found = stored_bodies(server, service)
        if found == sorted(expected) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def logs_json(server: RunningServer, service: str) -> list[dict[str, Any]]:
    """The service's records as `steth logs --json` prints them."""
    return list(server.steth_json("logs", "--service", service, "--limit", "100000")["logs"])


@dataclass
class Scenario:
    """A directory of log files, a `steth tail` following them, and the lines expected so far."""

    server: RunningServer
    dir: Path
    service: str
    tail: Tail
    patterns: list[str]
    expected: list[str] = field(default_factory=list)

    def path(self, name: str) -> Path:
        return self.dir / name

    def write(self, name: str, *lines: str, end: str = "\n") -> None:
        with open(self.dir / name, "a", newline="") as handle:
            handle.write("".join(line + end for line in lines))

    def arrived(self, *bodies: str) -> None:
        """These (and everything expected before) are in the store, once each."""
        self.expected += bodies
        assert wait_for_bodies(self.server, self.service, self.expected) == sorted(self.expected)

    def sent(self, *bodies: str) -> None:
        """These are expected, and every followed file is committed to its end (acknowledged).

        Quicker than waiting for the store, which shows records only after its next commit."""
        self.expected += bodies
        deadline = time.monotonic() + WAIT_S
        while not self._committed():
            assert time.monotonic() < deadline, f"not committed: {self.tail.state.read_text()}"
            time.sleep(0.02)

    def _committed(self) -> bool:
        if not self.tail.state.exists():
            return False
        offsets = self.tail.offsets()
        followed = [
            p.stat()
            for p in self.dir.iterdir()
            if any(fnmatch.fnmatch(p.name, pattern) for pattern in self.patterns)
        ]
        return all(offsets.get(info.st_ino) == info.st_size for info in followed)

    def restart(self) -> None:
        self.tail.stop()
        self.tail.start()


@pytest.fixture
def scenario(server: RunningServer, tmp_path: Path, request: pytest.FixtureRequest
             ) -> Iterator[Callable[..., Scenario]]:  # fmt: skip
    """A factory: `scenario(patterns, *extra_args)` starts `steth tail` on a fresh directory."""
    logs = tmp_path / "logs"
    logs.mkdir()
    service = f"tail-{request.node.name}"
    tails: list[Tail] = []

    def make(patterns: list[str], *extra: str, start: bool = True) -> Scenario:
        tail = Tail(server.otlp_url, tmp_path, service, [str(logs / p) for p in patterns], *extra)
        tails.append(tail)
        if start:
            tail.start()
        return Scenario(server, logs, service, tail, patterns)

    yield make
    for tail in tails:
        if tail.process is not None and tail.process.poll() is None:
            tail.stop()


# -- rotation: each case ends with exactly the expected lines stored, once --------------------


def rename_and_create(s: Scenario) -> None:
    s.write("app.log", "a1", "a2")
    s.sent("a1", "a2")
    os.rename(s.path("app.log"), s.path("app.log.1"))
    s.write("app.log.1", "a3")  # the writer still holds the old file
    s.write("app.log", "b1")
    s.sent("a3", "b1")


def copytruncate(s: Scenario) -> None:
    s.write("app.log", "a1", "a2", "a3")
    s.sent("a1", "a2", "a3")
    shutil.copy(s.path("app.log"), s.path("app.log.1"))
    os.truncate(s.path("app.log"), 0)
    s.write("app.log", "b1")
    s.sent("b1")


def truncate_and_rewrite_longer(s: Scenario) -> None:
    s.write("app.log", "a1")
    s.sent("a1")
    # Longer than what was read before the next poll: only the changed first bytes tell.
    with open(s.path("app.log"), "w") as handle:
        handle.write("b1 rewritten\nb2 rewritten\n")
    s.sent("b1 rewritten", "b2 rewritten")


def delete_and_recreate(s: Scenario) -> None:
    s.write("app.log", "a1", "a2")
    s.sent("a1", "a2")
    s.path("app.log").unlink()
    s.write("app.log", "b1")
    s.sent("b1")


def new_file_matching_glob(s: Scenario) -> None:
    s.write("one.log", "a1")
    s.sent("a1")
    s.write("two.log", "b1", "b2")
    s.write("notes.txt", "not followed")
    s.write("one.log", "a2")
    s.sent("b1", "b2", "a2")


def append_after_restart(s: Scenario) -> None:
    s.write("app.log", "a1")
    s.sent("a1")
    s.tail.stop()
    s.write("app.log", "a2", "a3")
    s.tail.start()
    s.sent("a2", "a3")


def rotated_while_stopped(s: Scenario) -> None:
    s.write("app.log", "a1")
    s.sent("a1")
    s.tail.stop()
    s.write("app.log", "a2")
    os.rename(s.path("app.log"), s.path("app.log.1"))
    s.write("app.log", "b1")
    s.tail.start()
    s.sent("a2", "b1")


def partial_line_waits(s: Scenario) -> None:
    s.write("app.log", "par", end="")
    time.sleep(0.3)  # several polls see the unterminated line
    s.write("app.log", "tial")
    s.sent("partial")


def partial_line_across_restart(s: Scenario) -> None:
    s.write("app.log", "a1")
    s.write("app.log", "par", end="")
    s.arrived("a1")
    s.tail.stop()
    s.write("app.log", "tial")
    s.tail.start()
    s.sent("partial")


TRACEBACK = [
    "2026-01-01 10:00:00,000 ERROR app: request failed",
    "Traceback (most recent call last):",
    '  File "app.py", line 3, in <module>',
    "    boom()",
    "ValueError: bad input",
]


def python_traceback(s: Scenario) -> None:
    s.write("app.log", *TRACEBACK, "2026-01-01 10:00:01,000 INFO app: next")
    s.sent("\n".join(TRACEBACK), "2026-01-01 10:00:01,000 INFO app: next")


ROTATION_CASES = [
    ("rename_and_create", ["app.log"], rename_and_create),
    ("rename_and_create_rotated_name_also_matches", ["app.log*"], rename_and_create),
    ("copytruncate", ["app.log"], copytruncate),
    ("truncate_and_rewrite_longer", ["app.log"], truncate_and_rewrite_longer),
    ("delete_and_recreate", ["app.log"], delete_and_recreate),
    ("new_file_matching_glob", ["*.log"], new_file_matching_glob),
    ("append_after_restart", ["app.log"], append_after_restart),
    ("rotated_while_stopped", ["app.log"], rotated_while_stopped),
    ("partial_line_waits", ["app.log"], partial_line_waits),
    ("partial_line_across_restart", ["app.log"], partial_line_across_restart),
    ("python_traceback_is_one_record", ["app.log"], python_traceback),
]


@pytest.mark.parametrize(("patterns", "steps"), [c[1:] for c in ROTATION_CASES],
                         ids=[c[0] for c in ROTATION_CASES])  # fmt: skip
def test_rotation_delivers_every_line_once(scenario: Callable[..., Scenario], patterns: list[str],
                                           steps: Callable[[Scenario], None]) -> None:  # fmt: skip
    s = scenario(patterns)
    steps(s)
    s.tail.stop()
    assert wait_for_bodies(s.server, s.service, s.expected) == sorted(s.expected)
    bodies = sorted(record["body"] for record in logs_json(s.server, s.service))
    assert bodies == sorted(s.expected)


def test_records_carry_file_attributes_and_parsed_fields(scenario: Callable[..., Scenario]) -> None:
    s = scenario(["app.log"], "--instance", "web-1")
    s.write("app.log", *TRACEBACK)
    s.write("app.log", '{"level": "warn", "msg": "slow", "user": "ann"}')
    s.arrived("\n".join(TRACEBACK), "slow")
    s.tail.stop()
    records = {record["body"]: record for record in logs_json(s.server, s.service)}
    error, warn = records["\n".join(TRACEBACK)], records["slow"]
    assert error["severity_text"] == "ERROR" and error["instance"] == "web-1"
    assert error["time_ns"] == 1767261600000000000  # 2026-01-01 10:00:00 UTC, from the line
    assert error["attributes"]["log.file.path"] == str(s.path("app.log"))
    assert error["attributes"]["log.file.name"] == "app.log"
    assert warn["severity_number"] == 13 and warn["attributes"]["user"] == "ann"


# -- the first start: existing content is skipped unless --from-start -------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [((), ["old3 done", "new"]), (("--from-start",), ["old1", "old2", "old3 done", "new"])],
    ids=["skips_to_the_last_line", "from_start"],
)
def test_first_start(scenario: Callable[..., Scenario], extra: tuple[str, ...],
                     expected: list[str]) -> None:  # fmt: skip
    s = scenario(["app.log"], *extra, start=False)
    s.write("app.log", "old1", "old2")
    s.write("app.log", "old3", end="")  # a line being written when tail starts
    s.tail.start()
    s.write("app.log", " done", "new")
    s.arrived(*expected)


# -- bad input --------------------------------------------------------------------------------

BAD_INPUT = [
    ("invalid_utf8", b"ok \xff\xfe bytes\n", ["ok \ufffd\ufffd bytes"]),
    ("crlf_line_endings", b"a1\r\na2\r\n", ["a1", "a2"]),
    ("overlong_line_is_cut", b"x" * 250 + b"\nshort\n", ["x" * 100, "short"]),
    ("overlong_line_without_newline", b"y" * 150, ["y" * 100]),
    ("nul_bytes", b"\x00bin\x01ary\n", ["\x00bin\x01ary"]),
]


def test_bad_input_is_bounded_not_fatal(scenario: Callable[..., Scenario], tmp_path: Path) -> None:
    # One `steth tail` reads every case's file; each case's records are told by file name.
    excluded = str(tmp_path / "logs" / "skipped-*.log")
    s = scenario(["*.log"], "--max-line-bytes", "100", "--exclude", excluded)
    s.write("skipped-1.log", "excluded: never sent")
    for name, content, _ in BAD_INPUT:
        s.path(f"{name}.log").write_bytes(content)
    s.arrived(*(body for *_, bodies in BAD_INPUT for body in bodies))
    summary = s.tail.stop()
    assert "2 lines and 0 multiline records cut" in summary, summary
    by_file: dict[str, list[str]] = {}
    for record in logs_json(s.server, s.service):
        by_file.setdefault(record["attributes"]["log.file.name"], []).append(record["body"])
    assert set(by_file) == {f"{name}.log" for name, *_ in BAD_INPUT}
    for name, _, bodies in BAD_INPUT:
        assert sorted(by_file[f"{name}.log"]) == sorted(bodies), name


def test_unreadable_file_is_reported_once_and_retried(server: RunningServer, tmp_path: Path
                                                      ) -> None:  # fmt: skip
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:  # root reads anything: take that power away from `steth tail`
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv")
        drop = "-dac_override,-dac_read_search"
        prefix = ("setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}")
    secret = tmp_path / "app.log"
    secret.write_text("")
    secret.chmod(0o000)
    tail = Tail(server.otlp_url, tmp_path, "tail-unreadable", [str(secret)], prefix=prefix)
    tail.start()
    time.sleep(0.5)  # many polls fail
    with open(secret, "a") as handle:
        handle.write("now readable\n")
    secret.chmod(0o644)
    assert wait_for_bodies(server, "tail-unreadable", ["now readable"]) == ["now readable"]
    tail.stop()
    assert tail.stderr().count("cannot read") == 1, tail.stderr()
    assert "Permission denied" in tail.stderr()


# -- usage errors: a clear message and exit 2 (or 1 for an unreadable state) ------------------

USAGE_ERRORS = [
    ("directory_path", lambda d: [str(d)], 2, "is a directory"),
    ("missing_directory", lambda d: [str(d / "nope" / "app.log")], 2, "does not exist"),
    ("missing_glob_root", lambda d: [str(d / "nope" / "*.log")], 2, "does not exist"),
    ("bad_endpoint", lambda d: [str(d / "a.log"), "--endpoint", "ftp://x"], 2, "--endpoint"),
    ("empty_service", lambda d: [str(d / "a.log"), "--service", " "], 2, "--service"),
    ("bad_max_line_bytes", lambda d: [str(d / "a.log"), "--max-line-bytes", "0"], 2,
     "--max-line-bytes"),
    ("corrupt_state", lambda d: [str(d / "a.log"), "--state", str(d / "bad.json")], 1,
     "move it away"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "code", "message"), [c[1:] for c in USAGE_ERRORS],
                         ids=[c[0] for c in USAGE_ERRORS])  # fmt: skip
def test_usage_errors(tmp_path: Path, args: Callable[[Path], list[str]], code: int,
                      message: str) -> None:  # fmt: skip
    (tmp_path / "bad.json").write_text("{not json")
    argv = args(tmp_path)
    if "--service" not in argv:
        argv += ["--service", "x"]
    if "--state" not in argv:
        argv += ["--state", str(tmp_path / "state.json")]
    returned, _, err = run_steth("tail", *argv)
    assert (returned, message in err) == (code, True), err


def test_a_second_tail_on_the_same_state_is_refused(scenario: Callable[..., Scenario]) -> None:
    s = scenario(["app.log"])
    code, _, err = run_steth("tail", str(s.path("app.log")), "--service", s.service,
                             "--state", str(s.tail.state))  # fmt: skip
    assert code == 2 and "in use by another" in err, err


def test_stale_temp_files_are_removed_and_state_is_atomic(scenario: Callable[..., Scenario]
                                                           ) -> None:  # fmt: skip
    s = scenario(["app.log"], start=False)
    leftover = s.tail.state.with_name("state.json.tmp-99999")
    leftover.write_text("half a state")
    s.tail.start()
    s.write("app.log", "a1")
    s.arrived("a1")
    s.tail.stop()
    assert not leftover.exists()
    assert s.tail.offsets() == {s.path("app.log").stat().st_ino: 3}
    assert not list(s.tail.state.parent.glob("state.json.tmp-*"))
