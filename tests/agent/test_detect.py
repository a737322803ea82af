"""Which command lines count as Python programs (and so get auto-instrumentation)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from stethoscope.agent.detect import is_python_command

# name -> file body of the executable scripts the cases below run
SCRIPTS: dict[str, bytes] = {
    "env-python3": b"#!/usr/bin/env python3\nprint('hi')\n",
    "env-s-python3": b"#!/usr/bin/env -S python3 -u\nprint('hi')\n",
    "venv-python": b"#!/srv/app/.venv/bin/python\nfrom app import main\n",
    "pip-sh-wrapper": (
        b"#!/bin/sh\n'''exec' \"/very long/path/.venv/bin/python3.11\" \"$0\" \"$@\"\n' '''\n"
    ),
    "shell-script": b"#!/bin/sh\nexec python3 app.py\n",
    "node-script": b"#!/usr/bin/env node\nconsole.log(1)\n",
    "no-shebang": b"print('hi')\n",
    "elf-binary": b"\x7fELF\x02\x01\x01\x00" + bytes(64),
    "pythonista": b"#!/usr/bin/pythonista\n",
}

CASES = [
    # (id, argv with {bin} for the scripts' directory, expected)
    ("python", ["python", "app.py"], True),
    ("python3", ["python3", "-m", "http.server"], True),
    ("python3.11", ["python3.11", "app.py"], True),
    ("python3.13t-free-threaded", ["python3.13t", "app.py"], True),
    ("python-by-path", ["/usr/local/bin/python3", "app.py"], True),
    ("env-prefix", ["env", "A=1", "B=2", "python3", "app.py"], True),
    ("shebang-env-python3", ["{bin}/env-python3"], True),
    ("shebang-env-s-python3", ["{bin}/env-s-python3"], True),
    ("shebang-venv-python", ["{bin}/venv-python"], True),
    ("shebang-found-on-path", ["venv-python", "--port", "8000"], True),
    ("pip-sh-wrapper-long-path", ["{bin}/pip-sh-wrapper"], True),
    ("this-interpreter", [sys.executable, "-c", "pass"], True),
    ("sh-c-python", ["sh", "-c", "python3 app.py"], False),
    ("shell-script", ["{bin}/shell-script"], False),
    ("node", ["node", "server.js"], False),
    ("node-script", ["{bin}/node-script"], False),
    ("no-shebang", ["{bin}/no-shebang"], False),
    ("elf-binary", ["{bin}/elf-binary"], False),
    ("python-like-name", ["{bin}/pythonista"], False),
    ("pythonista-bare", ["pythonista"], False),
    ("python-config", ["python3.11-config", "--cflags"], False),
    ("python2.7", ["python2.7", "app.py"], False),
    ("missing-command", ["no-such-command-anywhere"], False),
    ("env-with-options", ["env", "-i", "python3", "app.py"], False),
    ("uv-run", ["uv", "run", "app.py"], False),
    ("empty", [], False),
]


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A directory of executable scripts, one per entry of SCRIPTS."""
    for name, body in SCRIPTS.items():
        path = tmp_path / name
        path.write_bytes(body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return tmp_path


@pytest.mark.parametrize(("argv", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_python_detection(bin_dir: Path, argv: list[str], expected: bool) -> None:
    resolved = [arg.replace("{bin}", str(bin_dir)) for arg in argv]
    search_path = os.pathsep.join([str(bin_dir), os.defpath])
    assert is_python_command(resolved, search_path=search_path) is expected


def test_a_link_to_python_counts(tmp_path: Path) -> None:
    link = tmp_path / "myservice"
    link.symlink_to(Path(sys.executable).resolve())
    assert is_python_command([str(link)], search_path=None)
