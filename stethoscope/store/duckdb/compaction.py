"""Rewriting a closed store file without the blocks DuckDB keeps free.

DuckDB reuses the blocks that deleted rows free, but never returns them to the file system
unless they end the file. A compact store (`steth up`, by default) deletes its rows tables'
rows as it seals them, so a file whose last checkpoint held rows sealed since keeps their
blocks free: after 2M benchmark spans, 14.3 MiB of which 2.8 were in use (65.4 B a span in
all). DuckDB's own answer is a copy (`COPY FROM DATABASE`, "Reclaiming Space" in its manual),
which carries the tables, views and constraints as they are (checked table by table): that
file's copy took 42 ms and 2.6 MiB (59.3 B a span in all). So a writer closing a file that is
mostly free copies it when the copy is small, and puts it in place with a rename, after which
the old file is gone whole or not at all.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from stethoscope.store.duckdb.attribute_columns import literal
from stethoscope.store.durable import fsync_path

__all__ = [
    "COMPACT_MAX_USED",
    "COMPACT_MIN_FREE",
    "compact",
    "remove_unfinished",
    "worth_compacting",
]

# Copy only when it at least halves the file, saves this much, and copies at most that much.
COMPACT_MIN_FREE = 4 * 2**20
COMPACT_MAX_USED = 64 * 2**20
_SUFFIX = ".compact"


def worth_compacting(path: Path, used_bytes: int) -> bool:
    """Whether the closed file at `path`, `used_bytes` of it in use, is worth a copy."""
    free = path.stat().st_size - used_bytes
    return used_bytes <= COMPACT_MAX_USED and free >= max(COMPACT_MIN_FREE, used_bytes)


def compact(path: Path) -> None:
    """Replace the closed store file at `path` with a copy of it (not when DuckDB's own log is
    beside it: the file alone is not the store then, nor when another writer has it open)."""
    if _log_of(path).exists():
        return
    copy = path.with_name(path.name + _SUFFIX)  # none left: a writer opening deletes one
    # The views read segments by paths relative to the data directory (segments.md).
    con = duckdb.connect(config={"file_search_path": str(path.parent.resolve())})
    try:
        try:
            # Attached to write, which takes DuckDB's lock on the file: no other writer can
            # open it, and write to what is about to be replaced, until the copy is in place.
            con.execute(f"ATTACH {literal(str(path))} AS source")
        except duckdb.IOException:  # another writer opened it since: the store is theirs
            return
        con.execute(f"ATTACH {literal(str(copy))} AS copy")
        con.execute("COPY FROM DATABASE source TO copy")
        con.execute("CHECKPOINT copy")
        con.execute("DETACH copy")
        if _log_of(copy).exists():  # all of the copy must be in the file that is renamed
            remove_unfinished(path)
            return
        fsync_path(copy)
        os.replace(copy, path)
        fsync_path(path.parent)
    finally:
        con.close()  # the old file, unchanged, is let go of only now


def remove_unfinished(path: Path) -> None:
    """Delete what a copy of the store file at `path` that never finished left."""
    copy = path.with_name(path.name + _SUFFIX)
    for leftover in (copy, _log_of(copy)):
        leftover.unlink(missing_ok=True)


def _log_of(path: Path) -> Path:
    """DuckDB's own log beside the database file at `path`."""
    return path.with_name(path.name + ".wal")
