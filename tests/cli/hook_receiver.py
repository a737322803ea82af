"""A real HTTP receiver on 127.0.0.1 for webhook tests: scripted answers, recorded bodies."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextmanager
def receiver(statuses: list[int]) -> Iterator[tuple[str, list[Any]]]:
    """Answers each POST with the next status (the last one repeats); records the bodies."""
    bodies: list[Any] = []
    answers = iter(statuses)
    last = [statuses[-1]]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            last[0] = next(answers, last[0])
            self.send_response(last[0])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", bodies
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
