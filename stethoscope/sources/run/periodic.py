"""A task run every few seconds on its own daemon thread until stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Periodic"]


class Periodic:
    """Calls `task` now and then every `every_s` seconds; `stop()` ends it promptly."""

    def __init__(self, name: str, every_s: float, task: Callable[[], None]) -> None:
        self._every_s = every_s
        self._task = task
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Periodic:
        """Start the thread."""
        self._thread.start()
        return self

    def stop(self, *, timeout_s: float = 5.0) -> None:
        """Ask the thread to end and wait a bounded time for a task in progress."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._task()
            if self._stop.wait(self._every_s):
                return
