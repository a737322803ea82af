"""The running server's addresses, recorded in its data directory for every other command.

`<data>/server.json` is written atomically (temp file, fsync, rename) once the server is ready
and removed when it stops; a file left by a killed server is recognised by its dead pid.
Format: docs/formats/server-json.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

ADDRESSES_FILE = "server.json"


class ServerAddresses(NamedTuple):
    """Where a running `steth up` listens.

    A NamedTuple, not a dataclass: every query command reads it, and importing `dataclasses`
    (with `inspect` and `ast`) took ~9 ms of `steth trace`'s start-up.
    """

    host: str
    grpc_port: int
    http_port: int
    api_port: int
    pid: int = 0

    @property
    def api_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"
        return f"http://{host}:{self.api_port}"


def write_addresses(data_dir: Path, addresses: ServerAddresses) -> None:
    """Record the addresses of this process's server."""
    record = addresses._asdict() | {"pid": os.getpid()}
    target = data_dir / ADDRESSES_FILE
    temp = target.with_suffix(".json.tmp")
    with open(temp, "w") as handle:
        json.dump(record, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, target)


def remove_addresses(data_dir: Path) -> None:
    """Forget the addresses (the server is stopping)."""
    (data_dir / ADDRESSES_FILE).unlink(missing_ok=True)


def read_addresses(data_dir: Path) -> ServerAddresses | None:
    """The addresses of a live server on this data directory, or None."""
    try:
        record = json.loads((data_dir / ADDRESSES_FILE).read_text())
        addresses = ServerAddresses(**record)
    except (OSError, ValueError, TypeError):
        return None
    return addresses if _alive(addresses.pid) else None


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (os.kill, not psutil: every CLI command asks, and importing
    psutil took ~12 ms of its start-up)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
