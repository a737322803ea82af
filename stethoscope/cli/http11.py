"""One kept-alive HTTP/1.1 connection, for the CLI's GET requests to a running server's API.

The protocol is h11's (the library under uvicorn, installed with it); this module only moves
bytes between it and a socket. The standard library's `http.client` imports its e-mail parser
and ssl: ~15 ms of every query command's start-up against ~7 ms for h11 and a socket.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import h11

__all__ = ["Http11Connection", "HttpError"]

RECEIVE_BYTES = 256 * 1024


class HttpError(Exception):
    """The server could not be reached, stopped answering, or broke the protocol."""


class _Closed(HttpError):
    """The server closed the connection before answering: a kept-alive connection it dropped
    while idle, where the request may be sent again on a new one."""


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
        self._http = h11.Connection(h11.CLIENT)

    def get(self, target: str, headers: Sequence[tuple[str, str]] = ()) -> tuple[int, bytes]:
        """(status, body) of `GET target`; HttpError when no answer came."""
        reused = self._socket is not None
        try:
            return self._answer(target, headers)
        except _Closed:
            if not reused:
                raise
        return self._answer(target, headers)  # GET is safe to repeat: once, on a new connection

    def _answer(self, target: str, headers: Sequence[tuple[str, str]]) -> tuple[int, bytes]:
        try:
            return self._exchange(target, headers)
        except _Closed:
            self.close()
            raise
        except (OSError, h11.ProtocolError) as error:
            self.close()
            raise HttpError(str(error) or type(error).__name__) from None

    def _exchange(self, target: str, headers: Sequence[tuple[str, str]]) -> tuple[int, bytes]:
        if self._socket is None:
            # The host may be bytes (see __init__), which typeshed does not allow for.
            address: Any = self._address
            self._socket = socket.create_connection(address, timeout=self._timeout)
            self._http = h11.Connection(h11.CLIENT)
        http, sock = self._http, self._socket
        request = h11.Request(
            method="GET", target=target, headers=[("Host", self._host_header), *headers]
        )
        try:
            sock.sendall((http.send(request) or b"") + (http.send(h11.EndOfMessage()) or b""))
        except (BrokenPipeError, ConnectionResetError) as error:
            raise _Closed(str(error)) from None
        status = 0
        body = bytearray()
        answered = False  # any byte of the answer received
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = sock.recv(RECEIVE_BYTES)
                except ConnectionResetError:
                    data = b""
                if not data and not answered:
                    raise _Closed("the server closed the connection without answering")
                answered = True
                http.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        if http.our_state is h11.DONE and http.their_state is h11.DONE:
            http.start_next_cycle()
        else:  # the server will close it (Connection: close)
            self.close()
        return status, bytes(body)

    def close(self) -> None:
        """Close the connection; the next request opens a new one."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
