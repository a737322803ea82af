"""One kept-alive HTTP/1.1 connection, for the CLI's GET requests to a running server's API.

Answers are parsed by httptools (llhttp's C parser, which uvicorn serves with, installed with
it); this module writes the request line and moves bytes between the parser and a socket.
Importing it costs ~1.5 ms of a query command's start-up (it shares `typing` with the CLI):
h11 took ~11 ms and the `dataclasses` it brings ~9 more, the standard library's `http.client`
~22 (its e-mail parser and ssl), of a `steth trace` whose whole budget is 100 ms.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import httptools

__all__ = ["Http11Connection", "HttpError"]

RECEIVE_BYTES = 256 * 1024
_FORBIDDEN = ("\r", "\n", "\0")  # would end a header line or the request early


class HttpError(Exception):
    """The server could not be reached, stopped answering, or broke the protocol."""


class _Closed(HttpError):
    """The server closed the connection before answering: a kept-alive connection it dropped
    while idle, where the request may be sent again on a new one."""


class _Answer:
    """The parser's callbacks: the body of one answer, whether the server keeps the connection
    open after it (known once its headers are parsed) and whether it is complete."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.body = bytearray()
        self.keep_alive = False
        self.complete = False

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


class Http11Connection:
    """GET requests to one host and port over one connection, reconnecting when it is lost."""

    def __init__(self, host: str, port: int, *, timeout: float) -> None:
        # An ASCII host as bytes: a str host is encoded by getaddrinfo with the "idna" codec,
        # whose import (with stringprep and unicodedata) was ~1 ms of every query command,
        # and which leaves an ASCII name's bytes as they are.
        self._address = (host.encode() if host.isascii() else host, port)
        self._host_header = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._timeout = timeout
        self._socket: socket.socket | None = None

    def get(self, target: str, headers: Sequence[tuple[str, str]] = ()) -> tuple[int, bytes]:
        """(status, body) of `GET target`; HttpError when no answer came."""
        request = _request(target, [("Host", self._host_header), *headers])
        reused = self._socket is not None
        try:
            return self._answer(request)
        except _Closed:
            if not reused:
                raise
        return self._answer(request)  # GET is safe to repeat: once, on a new connection

    def _answer(self, request: bytes) -> tuple[int, bytes]:
        try:
            return self._exchange(request)
        except _Closed:
            self.close()
            raise
        except (OSError, httptools.HttpParserError) as error:
            self.close()
            raise HttpError(str(error) or type(error).__name__) from None

    def _exchange(self, request: bytes) -> tuple[int, bytes]:
        if self._socket is None:
            # The host may be bytes (see __init__), which typeshed does not allow for.
            address: Any = self._address
            self._socket = socket.create_connection(address, timeout=self._timeout)
        sock = self._socket
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError) as error:
            raise _Closed(str(error)) from None
        answer = _Answer()
        answered = False  # any byte of the answer received
        while not answer.complete:
            try:
                data = sock.recv(RECEIVE_BYTES)
            except ConnectionResetError:
                data = b""
            if not data:
                if not answered:
                    raise _Closed("the server closed the connection without answering")
                raise HttpError("the server closed the connection in the middle of its answer")
            answered = True
            answer.parser.feed_data(data)
        if not answer.keep_alive:  # the server will close it (Connection: close)
            self.close()
        return answer.parser.get_status_code(), bytes(answer.body)

    def close(self) -> None:
        """Close the connection; the next request opens a new one."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _request(target: str, headers: Sequence[tuple[str, str]]) -> bytes:
    """The bytes of `GET target` with `headers`; HttpError for a line break or NUL in any, or
    a character HTTP/1.1 cannot carry (beyond Latin-1)."""
    parts = [target, *(text for header in headers for text in header)]
    if any(bad in part for part in parts for bad in _FORBIDDEN):
        raise HttpError("a header or the path holds a line break or NUL")
    lines = [f"GET {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers)]
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise HttpError("a header holds a character beyond Latin-1") from None
