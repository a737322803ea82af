"""Multiline joining on real stack traces: Python, Java and Node from real child processes, Go
from real crash output; bounds, idle flushing and the no-loss property."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stethoscope.errors import UsageError
from stethoscope.logs.multiline import MultilineJoiner


def join_all(lines: list[str], **options: int) -> list[str]:
    """Feed every line at once, as a burst of output arrives, then close the stream."""
    joiner = MultilineJoiner(**options)
    records: list[str] = []
    for line in lines:
        records += joiner.feed(line, 0.0)
    return records + joiner.close()


def output_lines(args: list[str], tmp_path: Path) -> list[str]:
    """The stderr lines of a real child process, as `steth run` would hand them on."""
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    return done.stderr.splitlines()


PYTHON_PROGRAM = """\
import logging
logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
log = logging.getLogger("app")
def load():
    return {}["missing"]
try:
    try:
        load()
    except KeyError as exc:
        raise RuntimeError("config broken") from exc
except RuntimeError:
    log.exception("startup failed")
try:
    try:
        1 / 0
    except ZeroDivisionError:
        int("x")
except ValueError:
    log.exception("retry failed")
log.warning("plain warning")
raise ValueError("bad value")
"""


def test_real_python_tracebacks_join_their_log_line_and_chains(tmp_path: Path) -> None:
    (tmp_path / "crash.py").write_text(PYTHON_PROGRAM)
    lines = output_lines([sys.executable, "crash.py"], tmp_path)
    records = join_all(lines)
    assert len(records) == 4, records
    first, second, warning, uncaught = records
    assert first.split("\n")[0].endswith("ERROR app: startup failed")
    assert "KeyError: 'missing'" in first
    assert "The above exception was the direct cause of the following exception:" in first
    assert first.endswith("RuntimeError: config broken")
    assert second.split("\n")[0].endswith("ERROR app: retry failed")
    assert "During handling of the above exception, another exception occurred:" in second
    assert second.endswith("ValueError: invalid literal for int() with base 10: 'x'")
    assert warning.endswith("WARNING app: plain warning") and "\n" not in warning
    assert uncaught.startswith("Traceback (most recent call last):")
    assert uncaught.endswith("ValueError: bad value")
    assert "\n".join(records) == "\n".join(lines)


JAVA_PROGRAM = """\
public class Main {
    static void load(String name) {
        try {
            Integer.parseInt(name);
        } catch (NumberFormatException e) {
            throw new IllegalStateException("cannot load config " + name, e);
        }
    }
    public static void main(String[] args) throws Exception {
        try {
            load("abc");
        } catch (IllegalStateException e) {
            System.err.println("2024-01-02 15:04:05,123 ERROR [main] com.example.Main - failed");
            e.printStackTrace();
        }
        Exception primary = new Exception("request failed");
        primary.addSuppressed(new RuntimeException("close failed"));
        primary.printStackTrace();
        System.err.println("2024-01-02 15:04:06,000 INFO [main] com.example.Main - retrying");
        load("xyz");
    }
}
"""


@pytest.mark.skipif(shutil.which("java") is None, reason="needs a Java runtime")
def test_real_java_stack_traces_with_causes_and_suppressed(tmp_path: Path) -> None:
    (tmp_path / "Main.java").write_text(JAVA_PROGRAM)
    lines = output_lines(["java", "Main.java"], tmp_path)
    records = join_all(lines)
    assert len(records) == 4, records
    logged, suppressed, info, uncaught = records
    assert logged.startswith("2024-01-02 15:04:05,123 ERROR")
    assert "\njava.lang.IllegalStateException: cannot load config abc\n\tat Main.load" in logged
    assert '\nCaused by: java.lang.NumberFormatException: For input string: "abc"' in logged
    assert logged.endswith(" more")
    assert suppressed.startswith("java.lang.Exception: request failed\n\tat Main.main")
    assert "\tSuppressed: java.lang.RuntimeException: close failed\n\t\tat Main.main" in suppressed
    assert "\n" not in info
    assert uncaught.startswith('Exception in thread "main" java.lang.IllegalStateException')
    assert '\nCaused by: java.lang.NumberFormatException: For input string: "xyz"' in uncaught
    assert "\n".join(records) == "\n".join(lines)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_real_node_error_joins_its_frames(tmp_path: Path) -> None:
    (tmp_path / "err.js").write_text('console.error(new Error("boom"));\nconsole.error("done");\n')
    records = join_all(output_lines(["node", "err.js"], tmp_path))
    assert len(records) == 2
    assert records[0].startswith("Error: boom\n    at Object.<anonymous> (")
    assert records[1] == "done"


# A real logback/printStackTrace capture from `java Main.java` (OpenJDK 17), for reading along.
JAVA_SAMPLE = """\
2024-01-02 15:04:05,123 ERROR [main] com.example.Main - load failed
java.lang.IllegalStateException: cannot load config abc
\tat Main.load(Main.java:6)
\tat Main.main(Main.java:11)
\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)
\tat jdk.compiler/com.sun.tools.javac.launcher.Main.main(Main.java:132)
Caused by: java.lang.NumberFormatException: For input string: "abc"
\tat java.base/java.lang.NumberFormatException.forInputString(NumberFormatException.java:67)
\tat java.base/java.lang.Integer.parseInt(Integer.java:668)
\tat Main.load(Main.java:4)
\t... 8 more"""

# Real Go crash output: `go run` of an out-of-range index (exit status included) ...
GO_PANIC = """\
panic: runtime error: index out of range [3] with length 0

goroutine 1 [running]:
main.MyPanic()
\t/root/workspace/go/test_panic_recover_basic.go:14 +0x5e
main.main()
\t/root/workspace/go/test_panic_recover_basic.go:18 +0x17
exit status 2"""
# ... a gopls crash report (a nil dereference with its signal line, frames with arguments and
# `created by`), followed by the editor's own lines ...
GO_SIGSEGV = """\
panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x40 pc=0x7260d4]

goroutine 5 [running]:
golang.org/x/tools/internal/lsp/source.qualifier(0x0, 0x0, 0x0, 0x8fa280)
\t/home/nohup/Golang/src/golang.org/x/tools/internal/lsp/source/completion_format.go:173 +0x34
golang.org/x/tools/internal/lsp.(*Server).documentSymbol(0xc00014a4d0, 0x8f5420, 0xc000070fc0)
\t/home/nohup/Golang/src/golang.org/x/tools/internal/lsp/symbols.go:22 +0x138
created by golang.org/x/tools/internal/jsonrpc2.(*Conn).Run
\t/home/nohup/Golang/src/golang.org/x/tools/internal/jsonrpc2/jsonrpc2.go:270 +0xba"""
EDITOR_LINES = """\
[Error - 3:27:07 AM] Connection to server got closed. Server will not be restarted.
Error: Connection got disposed.
    at Object.dispose (/home/nohup/.vscode-insiders/extensions/vscode-jsonrpc/lib/main.js:876:25)
    at Socket.emit (events.js:187:15)"""
# ... and a goroutine dump of a deadlock with two goroutines.
GO_DEADLOCK = """\
fatal error: all goroutines are asleep - deadlock!

goroutine 1 [chan receive]:
main.main()
\t/home/user/proj/main.go:10 +0x68

goroutine 18 [chan send]:
main.producer()
\t/home/user/proj/main.go:20 +0x45
created by main.main in goroutine 1
\t/home/user/proj/main.go:15 +0x25
exit status 2"""
PY_TRACEBACK = """\
Traceback (most recent call last):
  File "/app/main.py", line 42, in <module>
    result = process(data)
  File "/app/utils.py", line 15, in process
    return data['key']
           ~~~~^^^^^^^
KeyError: 'key'"""

# name: (lines fed, records expected)
CASES: dict[str, tuple[str, list[str]]] = {
    "single lines stay single": ("one\ntwo\nthree", ["one", "two", "three"]),
    "java trace after its log line": (JAVA_SAMPLE + "\nnext", [JAVA_SAMPLE, "next"]),
    "go panic with exit status": ("starting\n" + GO_PANIC + "\nrestarted", [
        "starting", GO_PANIC, "restarted"]),
    "go nil dereference then other lines": (
        "log line 6\n\n" + GO_SIGSEGV + "\n" + EDITOR_LINES,
        ["log line 6", "", GO_SIGSEGV, EDITOR_LINES.split("\n", 1)[0],
         EDITOR_LINES.split("\n", 1)[1]],
    ),
    "goroutine dump with blank lines between goroutines": (GO_DEADLOCK, [GO_DEADLOCK]),
    "go dump then a blank and a log line": (
        GO_DEADLOCK + "\n\n2024/01/02 15:04:05 restarted",
        [GO_DEADLOCK, "", "2024/01/02 15:04:05 restarted"],
    ),
    "python logging default then traceback": (
        "ERROR:root:boom\n" + PY_TRACEBACK + "\nINFO:root:next",
        ["ERROR:root:boom\n" + PY_TRACEBACK, "INFO:root:next"],
    ),
    "two tracebacks in a row are two records": (
        PY_TRACEBACK + "\n" + PY_TRACEBACK, [PY_TRACEBACK, PY_TRACEBACK]),
    "a traceback cut short by a new log line": (
        'Traceback (most recent call last):\n  File "x.py", line 1\n2024-01-02 15:04:05 INFO up',
        ['Traceback (most recent call last):\n  File "x.py", line 1',
         "2024-01-02 15:04:05 INFO up"],
    ),
    "indented continuation lines": (
        "Usage: tool [options]\n  -h  help\n  -v  verbose\ndone",
        ["Usage: tool [options]\n  -h  help\n  -v  verbose", "done"],
    ),
    "blank lines after a plain line are their own records": ("a\n\n\nb", ["a", "", "", "b"]),
    "two blanks end a traceback chain": (
        PY_TRACEBACK + "\n\n\nnext", [PY_TRACEBACK, "", "", "next"]),
    "json lines are never joined": (
        '{"msg":"a"}\n  indented\n{"msg":"b"}', ['{"msg":"a"}', "  indented", '{"msg":"b"}']),
    "a json line ends a pending record": (
        "ERROR:root:x\n" + PY_TRACEBACK + '\n{"msg":"a"}',
        ["ERROR:root:x\n" + PY_TRACEBACK, '{"msg":"a"}'],
    ),
    "java exception class alone after a line": (
        "request failed\njava.net.SocketTimeoutException: Read timed out\n\tat x.Y(Y.java:1)",
        ["request failed\njava.net.SocketTimeoutException: Read timed out\n\tat x.Y(Y.java:1)"],
    ),
    "a component prefix is not a java exception": (
        "started\ncom.example.App: listening", ["started", "com.example.App: listening"]),
    "leading indented line starts its own record": (
        "  orphan\n  more\nx", ["  orphan\n  more", "x"]),
    "empty input": ("", [""]),
}  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), CASES.values(), ids=CASES.keys())
def test_joins(text: str, expected: list[str]) -> None:
    assert join_all(text.split("\n")) == expected


def test_a_plain_line_waits_at_most_idle_flush_s() -> None:
    joiner = MultilineJoiner(idle_flush_s=0.5)
    assert joiner.feed("ERROR:root:boom", 10.0) == []
    assert joiner.flush_due(10.4) == []
    assert joiner.feed("Traceback (most recent call last):", 10.45) == []
    assert joiner.flush_due(10.9) == []  # the traceback line restarted the idle clock
    assert joiner.flush_due(10.95) == ["ERROR:root:boom\nTraceback (most recent call last):"]
    assert joiner.flush_due(20.0) == []
    assert joiner.close() == []


def test_held_blank_is_released_by_idle_flush() -> None:
    joiner = MultilineJoiner(idle_flush_s=0.5)
    assert joiner.feed("KeyError: 'x'", 0.0) == []
    assert joiner.feed("panic: boom", 0.1) == ["KeyError: 'x'"]
    assert joiner.feed("", 0.2) == []  # a goroutine may follow the blank line
    assert joiner.flush_due(0.8) == ["panic: boom", ""]


def test_json_line_is_returned_at_once() -> None:
    joiner = MultilineJoiner()
    assert joiner.feed('{"level":"info","msg":"up"}', 0.0) == ['{"level":"info","msg":"up"}']


def test_too_many_lines_are_cut_and_counted() -> None:
    frames = [f"\tat com.example.F.f{i}(F.java:{i})" for i in range(10)]
    lines = ["java.lang.StackOverflowError", *frames, "next record"]
    records = join_all(lines, max_lines=4)
    assert records == ["\n".join(lines[:4]), "next record"]


def test_truncated_counts_records_cut() -> None:
    joiner = MultilineJoiner(max_lines=2, max_bytes=50)
    records: list[str] = []
    json_line = '{"m":"' + "y" * 60 + '"}'
    for line in ["Traceback (most recent call last):", "  a", "  b", "E: x", "x" * 80, json_line]:
        records += joiner.feed(line, 0.0)
    records += joiner.close()
    assert records == ["Traceback (most recent call last):\n  a", "x" * 50, json_line[:50]]
    assert joiner.truncated == 3


def test_cut_never_splits_a_character() -> None:
    records = join_all(["é" * 10], max_bytes=5)  # two bytes each: 2.5 fit
    assert records == ["éé"]


def test_many_continuation_lines_stay_bounded() -> None:
    joiner = MultilineJoiner(max_lines=3, max_bytes=1000)
    joiner.feed("goroutine 1 [running]:", 0.0)
    for _ in range(100_000):
        joiner.feed("\t/src/main.go:1 +0x1", 0.0)
    (record,) = joiner.close()
    assert record.count("\n") == 2
    assert joiner.truncated == 1


BAD_OPTIONS = {
    "no lines": ({"max_lines": 0}, "max_lines"),
    "no bytes": ({"max_bytes": 0}, "max_bytes"),
    "negative idle": ({"idle_flush_s": -1.0}, "idle_flush_s"),
    "nan idle": ({"idle_flush_s": float("nan")}, "idle_flush_s"),
}


@pytest.mark.parametrize(("options", "named"), BAD_OPTIONS.values(), ids=BAD_OPTIONS.keys())
def test_bad_options_are_refused(options: dict[str, float], named: str) -> None:
    with pytest.raises(UsageError, match=named):
        MultilineJoiner(**options)  # type: ignore[arg-type]


SAMPLE_LINES = [
    *PY_TRACEBACK.split("\n"),
    *GO_DEADLOCK.split("\n"),
    *JAVA_SAMPLE.split("\n"),
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
    "Caused by: x.Y: z",
    "panic: boom",
    "",
    "  indented",
    '{"a": 1}',
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from(SAMPLE_LINES), st.text(max_size=40)),
            st.booleans(),
        ),
        max_size=60,
    )
)
def test_nothing_is_lost_or_reordered(feed: list[tuple[str, bool]]) -> None:
    joiner = MultilineJoiner(idle_flush_s=0.5)
    records: list[str] = []
    now = 0.0
    for line, pause in feed:
        line = line.replace("\n", " ").replace("\r", " ")
        if pause:
            now += 1.0
            records += joiner.flush_due(now)
        records += joiner.feed(line, now)
    records += joiner.close()
    assert "\n".join(records) == "\n".join(
        line.replace("\n", " ").replace("\r", " ") for line, _ in feed
    )
    assert joiner.truncated == 0
