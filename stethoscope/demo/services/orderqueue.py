"""The order queue: a SQLite table that checkout appends to and the worker consumes, with acks.

A claimed order that is not acknowledged within `VISIBILITY_S` is handed out again (the worker
died mid-order); one that failed `MAX_ATTEMPTS` times is parked as dead. WAL mode, so the
producer and the consumer do not block each other.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

__all__ = ["MAX_ATTEMPTS", "OrderQueue"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY, payload TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'ready',
    enqueued_ns INTEGER NOT NULL, claimed_ns INTEGER, attempts INTEGER NOT NULL DEFAULT 0)
"""
VISIBILITY_S = 30.0
MAX_ATTEMPTS = 3
BUSY_TIMEOUT_S = 5.0


class OrderQueue:
    """One queue file; every method opens its own short connection (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)

    def enqueue(self, order: dict[str, Any]) -> int:
        """Append an order; the queue depth (ready orders) after it."""
        db = self._connect()
        try:
            db.execute(
                "INSERT INTO orders (payload, enqueued_ns) VALUES (?, ?)",
                (json.dumps(order), time.time_ns()),
            )
            return int(db.execute("SELECT count(*) FROM orders WHERE status='ready'").fetchone()[0])
        finally:
            db.close()

    def claim(self) -> tuple[int, dict[str, Any]] | None:
        """The oldest order ready (or claimed too long ago), now claimed; None when empty."""
        now = time.time_ns()
        stale = now - int(VISIBILITY_S * 1e9)
        db = self._connect()
        try:
            row = db.execute(
                "UPDATE orders SET status='claimed', claimed_ns=?, attempts=attempts+1 "
                "WHERE id = (SELECT id FROM orders WHERE status='ready' "
                "OR (status='claimed' AND claimed_ns < ?) ORDER BY id LIMIT 1) "
                "RETURNING id, payload",
                (now, stale),
            ).fetchone()
        finally:
            db.close()
        return None if row is None else (int(row[0]), json.loads(row[1]))

    def ack(self, order_id: int) -> None:
        """The order is done: remove it."""
        self._run("DELETE FROM orders WHERE id=?", order_id)

    def release(self, order_id: int) -> None:
        """The order failed: ready again, or dead after MAX_ATTEMPTS."""
        self._run(
            f"UPDATE orders SET status=CASE WHEN attempts >= {MAX_ATTEMPTS} THEN 'dead' "
            "ELSE 'ready' END WHERE id=?",
            order_id,
        )

    def dead(self, order_id: int) -> None:
        """The order can never succeed: park it."""
        self._run("UPDATE orders SET status='dead' WHERE id=?", order_id)

    def depth(self) -> int:
        """How many orders wait."""
        db = self._connect()
        try:
            return int(db.execute("SELECT count(*) FROM orders WHERE status='ready'").fetchone()[0])
        finally:
            db.close()

    def _run(self, sql: str, order_id: int) -> None:
        db = self._connect()
        try:
            db.execute(sql, (order_id,))
        finally:
            db.close()
