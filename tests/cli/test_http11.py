"""The CLI's HTTP/1.1 connection to the API, against real servers on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stethoscope.cli.http11 import Http11Connection, HttpError
from tests.conftest import cli_env, free_port


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless told otherwise
    peers: list[int]
    close_after_answer = False
    say_close = False
    chunked = False

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.peers.append(self.client_address[1])
        body = json.dumps({"path": self.path, "auth": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.say_close:
            self.send_header("Connection", "close")
        if self.chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (body[:5], body[5:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        # Closing without saying so: what a server does to a kept-alive connection idle too
        # long, seen by the client only at its next request.
        self.close_connection = self.close_after_answer

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving(**behaviour: bool) -> Iterator[tuple[int, list[int]]]:
    """A real HTTP/1.1 server on loopback; yields its port and the client port of each GET."""
    peers: list[int] = []
    handler = type("Handler", (_Handler,), {"peers": peers, **behaviour})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], peers
    finally:
        server.shutdown()
        server.server_close()


def test_requests_share_one_kept_alive_connection() -> None:
    with serving() as (port, peers):
        connection = Http11Connection("127.0.0.1", port, timeout=10)
        answers = [
            connection.get(f"/api/x?n={n}", [("Authorization", "Bearer t")]) for n in range(3)
        ]
        connection.close()
    assert [status for status, _ in answers] == [200, 200, 200]
    assert [json.loads(body) for _, body in answers] == [
        {"path": f"/api/x?n={n}", "auth": "Bearer t"} for n in range(3)
    ]
    assert len(set(peers)) == 1


def test_a_connection_the_server_dropped_is_opened_again() -> None:
    with serving(close_after_answer=True) as (port, peers):
        connection = Http11Connection("127.0.0.1", port, timeout=10)
        first = connection.get("/a")
        second = connection.get("/b")
        connection.close()
    assert (first[0], second[0]) == (200, 200)
    assert json.loads(second[1])["path"] == "/b"
    assert len(set(peers)) == 2


def test_a_chunked_answer_is_read_whole() -> None:
    with serving(chunked=True) as (port, _):
        status, body = Http11Connection("127.0.0.1", port, timeout=10).get("/chunks")
    assert status == 200
    assert json.loads(body)["path"] == "/chunks"


def _raw_server(answer: Callable[[socket.socket], None]) -> tuple[int, threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        with listener:
            client, _ = listener.accept()
            with client:
                client.recv(65536)
                answer(client)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, thread


@pytest.mark.parametrize(
    "answer",
    [
        lambda client: None,  # closes without a word
        lambda client: client.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"cut'),
        lambda client: client.sendall(b"this is not HTTP\r\n\r\n"),
    ],
    ids=["closed at once", "cut mid-body", "not HTTP"],
)
def test_a_broken_answer_is_an_http_error(answer: Callable[[socket.socket], None]) -> None:
    port, thread = _raw_server(answer)
    with pytest.raises(HttpError):
        Http11Connection("127.0.0.1", port, timeout=10).get("/x")
    thread.join(timeout=10)


def test_nobody_listening_is_an_http_error() -> None:
    with pytest.raises(HttpError):
        Http11Connection("127.0.0.1", free_port(), timeout=10).get("/x")


def test_the_cli_says_the_server_did_not_answer(tmp_path: Path) -> None:
    # A server.json of a live process (this one) whose API port nobody listens on.
    port = free_port()
    record = {"host": "127.0.0.1", "grpc_port": 1, "http_port": 1, "api_port": port}
    record["pid"] = os.getpid()
    (tmp_path / "server.json").write_text(json.dumps(record))
    done = subprocess.run(
        [sys.executable, "-m", "stethoscope.cli.main", "services", "--data", str(tmp_path)],
        capture_output=True, text=True, timeout=60, env=cli_env(),
    )  # fmt: skip
    assert done.returncode == 1
    assert f"server at http://127.0.0.1:{port} did not answer" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_answer_saying_connection_close_is_followed_by_a_new_connection() -> None:
    with serving(say_close=True) as (port, peers):
        connection = Http11Connection("127.0.0.1", port, timeout=10)
        answers = [connection.get(f"/n{n}") for n in range(2)]
        connection.close()
    assert [json.loads(body)["path"] for _, body in answers] == ["/n0", "/n1"]
    assert len(set(peers)) == 2


@pytest.mark.parametrize(
    "header",
    [("Authorization", "Bearer t\r\nX-Injected: 1"), ("Authorization", "Bearer \0"),
     ("Authorization", "Bearer \u20ac")],
    ids=["line break", "NUL", "beyond Latin-1"],
)  # fmt: skip
def test_a_header_http_cannot_carry_is_refused_before_sending(header: tuple[str, str]) -> None:
    with serving() as (port, peers), pytest.raises(HttpError):
        Http11Connection("127.0.0.1", port, timeout=10).get("/x", [header])
    assert peers == []
