"""The start-up fingerprint: what a process was started as, so differing replicas stand out.

argv and environment (secrets withheld), sha256 of the files named on the command line, the
executable's sha256 and, for Python programs, the installed distributions of the interpreter the
child runs. `steth.fingerprint` is a sha256 over all of it except what differs between replicas
by nature (host names, working directories, the OTEL_* settings steth itself sets).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stethoscope.sources.run.redact import redact_argv, redact_environment, redact_text

__all__ = ["FingerprintLimits", "collect_fingerprint", "python_interpreter", "resolve_executable"]

# Environment variables that differ between healthy replicas, left out of the digest only.
_VOLATILE_ENV = re.compile(
    r"^(HOSTNAME|HOST|PWD|OLDPWD|SHLVL|_|TERM.*|COLUMNS|LINES|SSH_.*|DISPLAY|XDG_.*|OTEL_.*|"
    r"PYTEST_.*|STETH_.*|INVOCATION_ID|JOURNAL_STREAM|TMUX.*|WINDOWID|COLORTERM)$"
)
_PYTHON_NAME = re.compile(r"^(python|pypy)(\d+(\.\d+)*)?[a-z]?$")
_OPTION_WITH_PATH = re.compile(r"^--?[\w.\-]+=(?P<path>.+)$")
_LIST_PACKAGES = (
    "import importlib.metadata as m, json, sys\n"
    "json.dump({d.metadata['Name']: d.version for d in m.distributions() if d.metadata['Name']},"
    " sys.stdout)"
)
_CHUNK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class FingerprintLimits:
    """Bounds on the work a fingerprint does, so a huge argument list cannot stall start-up."""

    max_config_files: int = 32
    max_config_bytes: int = 16 * 2**20
    max_executable_bytes: int = 512 * 2**20
    packages_timeout_s: float = 10.0
    max_packages_bytes: int = 2**20


def resolve_executable(argv0: str, env: Mapping[str, str], cwd: Path) -> Path | None:
    """The file `argv0` runs, looked up on the child's PATH like the OS does."""
    if os.sep in argv0:
        path = cwd / argv0
        return path.resolve() if path.is_file() else None
    found = shutil.which(argv0, path=env.get("PATH", os.defpath))
    return Path(found).resolve() if found else None


def python_interpreter(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> Path | None:
    """The Python interpreter the command runs: argv[0] itself, or a script's `#!` line."""
    executable = resolve_executable(argv[0], env, cwd)
    if executable is None:
        return None
    if _PYTHON_NAME.match(executable.name) or _PYTHON_NAME.match(Path(argv[0]).name):
        return Path(argv[0]) if os.sep in argv[0] else executable
    try:
        with open(executable, "rb") as script:
            first = script.readline(256)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    if words and Path(words[0]).name == "env":
        words = [word for word in words[1:] if not word.startswith("-")]
    if words and _PYTHON_NAME.match(Path(words[0]).name):
        return resolve_executable(words[0], env, cwd)
    return None


def config_files(argv: Sequence[str], cwd: Path, limits: FingerprintLimits) -> dict[str, str]:
    """sha256 of each regular file named by an argument (`path` or `--opt=path`), bounded."""
    hashes: dict[str, str] = {}
    for arg in argv[1:]:
        if len(hashes) >= limits.max_config_files:
            break
        option = _OPTION_WITH_PATH.match(arg)
        candidate = option.group("path") if option else arg
        path = cwd / candidate
        try:
            if not path.is_file() or path.stat().st_size > limits.max_config_bytes:
                continue
        except OSError:
            continue
        digest = file_sha256(path, limits.max_config_bytes)
        if digest is not None:
            hashes[redact_text(candidate)] = digest
    return hashes


def file_sha256(path: Path, max_bytes: int) -> str | None:
    """sha256 hex of a file, or None when it cannot be read or is over `max_bytes`."""
    digest = hashlib.sha256()
    try:
        if path.stat().st_size > max_bytes:
            return None
        with open(path, "rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def installed_packages(
    python: Path, env: Mapping[str, str], limits: FingerprintLimits
) -> dict[str, str]:
    """name -> version of the distributions `python` sees with the child's environment."""
    try:
        done = subprocess.run(
            [str(python), "-c", _LIST_PACKAGES],
            capture_output=True,
            timeout=limits.packages_timeout_s,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    if done.returncode != 0 or len(done.stdout) > limits.max_packages_bytes:
        return {}
    try:
        found = json.loads(done.stdout)
    except ValueError:
        return {}
    return {str(name): str(version) for name, version in sorted(found.items())}


def collect_fingerprint(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, limits: FingerprintLimits
) -> dict[str, Any]:
    """The attributes of a `process.fingerprint` event, ending with `steth.fingerprint`."""
    executable = resolve_executable(argv[0], env, cwd)
    python = python_interpreter(argv, env, cwd)
    attributes: dict[str, Any] = {
        "process.command_args": redact_argv(argv),
        "process.environment": dict(sorted(redact_environment(env).items())),
        "config.files": config_files(argv, cwd, limits),
        "process.executable.path": str(executable) if executable else argv[0],
        "process.executable.sha256": (
            file_sha256(executable, limits.max_executable_bytes) if executable else None
        )
        or "",
        "python.packages": installed_packages(python, env, limits) if python else {},
    }
    attributes["steth.fingerprint"] = fingerprint_digest(attributes)
    return attributes


def fingerprint_digest(attributes: Mapping[str, Any]) -> str:
    """sha256 over the fingerprint, leaving out what differs between replicas by nature."""
    stable = dict(attributes)
    stable["process.environment"] = {
        name: value
        for name, value in attributes["process.environment"].items()
        if not _VOLATILE_ENV.match(name)
    }
    canonical = json.dumps(stable, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
