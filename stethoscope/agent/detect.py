"""Whether a command line starts a Python program, judged without running it.

Detected (what can be told robustly from the command line and the file it names):
- the executable's name is a CPython interpreter: `python`, `python3`, `python3.11`,
  `python3.13t`, given bare (looked up on the child's PATH) or as a path, or a link to one;
- a script whose `#!` line names one: `#!/usr/bin/python3`, `#!/usr/bin/env python3`,
  `#!/usr/bin/env -S python3 -u`, and pip's `#!/bin/sh` + `'''exec' /long/path/python` form
  for console scripts in venvs with long paths (so `uvicorn`, `gunicorn`, `flask` count);
- either of the above after `env [NAME=VALUE...]`.

Not detected (so they get only the OTEL_* variables): a shell running Python (`sh -c
"python app.py"`), launchers that pick the interpreter themselves (`uv run`, `poetry run`,
`pipenv run`, `pyenv exec`), frozen executables (PyInstaller), PyPy.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Sequence

__all__ = ["is_python_command", "is_python_name"]

# CPython 3's installed names: python, python3, python3.11, python3.13t (free-threaded).
# python2 is left out: the OpenTelemetry packages are for Python 3 only.
PYTHON_NAME = re.compile(r"python(3(\.\d+)?t?)?")
# Enough for any #! line and the second line of pip's sh wrapper.
SHEBANG_READ_BYTES = 4096
# pip writes this wrapper when the interpreter's path is too long or has spaces for a #! line.
PIP_SH_WRAPPER = "'''exec'"


def is_python_name(path: str) -> bool:
    """Whether the last component of `path` is a CPython interpreter's name."""
    return PYTHON_NAME.fullmatch(os.path.basename(path)) is not None


def is_python_command(argv: Sequence[str], *, search_path: str | None) -> bool:
    """Whether `argv` runs a Python program; bare names are looked up on `search_path`."""
    args = _without_env_prefix(argv)
    if not args:
        return False
    if is_python_name(args[0]):
        return True
    executable = _resolve(args[0], search_path)
    if executable is None:
        return False
    return is_python_name(os.path.realpath(executable)) or _script_names_python(executable)


def _without_env_prefix(argv: Sequence[str]) -> list[str]:
    """`env A=1 python3 x.py` -> `python3 x.py`; `env` with options is left alone (not parsed)."""
    args = list(argv)
    if args and os.path.basename(args[0]) == "env":
        args = args[1:]
        while args and "=" in args[0] and not args[0].startswith("-"):
            args = args[1:]
    return args


def _resolve(command: str, search_path: str | None) -> str | None:
    """The file `command` names: a path as given, a bare name through PATH (as exec does)."""
    if os.sep in command:
        return command if os.path.isfile(command) else None
    return shutil.which(command, path=search_path)


def _script_names_python(path: str) -> bool:
    """Whether the file starts with a #! line (or pip's sh wrapper) that runs CPython."""
    try:
        with open(path, "rb") as file:
            head = file.read(SHEBANG_READ_BYTES)
    except OSError:
        return False
    if not head.startswith(b"#!"):
        return False
    lines = head[2:].decode("utf-8", errors="replace").splitlines()
    interpreter = _interpreter(lines[0]) if lines else None
    if interpreter is None:
        return False
    if is_python_name(interpreter):
        return True
    if os.path.basename(interpreter) == "sh" and len(lines) > 1:
        return _pip_wrapper_names_python(lines[1])
    return False


def _interpreter(shebang: str) -> str | None:
    """The program a #! line runs: `/usr/bin/env -S python3 -u` -> `python3`."""
    words = shebang.split()
    if not words:
        return None
    if os.path.basename(words[0]) != "env":
        return words[0]
    for word in words[1:]:
        if not word.startswith("-") and "=" not in word:
            return word
    return None


def _pip_wrapper_names_python(line: str) -> bool:
    """pip's second line: `'''exec' "/long/venv/bin/python" "$0" "$@"`."""
    if not line.startswith(PIP_SH_WRAPPER):
        return False
    try:
        words = shlex.split(line)
    except ValueError:
        return False
    return len(words) > 1 and words[0] == "exec" and is_python_name(words[1])
