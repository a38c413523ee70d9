"""uvicorn's httptools HTTP/1.1 protocol with header and body deadlines (slow-loris protection).

uvicorn closes a connection that stays idle *between* requests (``timeout_keep_alive``), but a
connection that never sends a complete request keeps its socket: a new connection that sends
nothing, or one that trickles header bytes, was never closed (issue 19: 300 such sockets still open
after 60 s; 1,050 idle connections exhausted a 1,024-fd limit). This protocol closes a connection
whose request headers are not complete within ``header_timeout`` seconds of the connection or of
the request's first byte, and one whose body is not complete within ``body_timeout`` seconds of the
end of its headers. The application's own time (an expert call) is not limited here.

A request the HTTP parser rejects (a malformed request line or header) never reaches the
application; uvicorn answered it with a plain-text 400. This protocol answers it as the application
answers every error: ``{"detail": ...}`` as JSON, then closes the connection.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Defaults (seconds), also the ``ctd serve`` defaults.
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0


#: Default cap on open connections (keep it below the file-descriptor limit, often 1,024).
MAX_CONNECTIONS = 512


def guarded_protocol(
    header_timeout: float = HEADER_TIMEOUT_S,
    body_timeout: float = BODY_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
) -> type[asyncio.Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these deadlines and this cap."""
    if not (header_timeout > 0 and body_timeout > 0):
        raise ValueError("header and body timeouts must be > 0 seconds")
    if max_connections < 1:
        raise ValueError("max_connections must be >= 1")

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.close()
                return
            self._arm(header_timeout)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._deadline is None:
                self._arm(header_timeout)

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._arm(body_timeout)

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._disarm()

        def send_400_response(self, msg: str) -> None:
            body = json.dumps({"detail": f"malformed HTTP request: {msg}"}).encode()
            head = [b"HTTP/1.1 400 Bad Request\r\n"]
            head += [
                name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
            ]
            head += [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
            ]
            self.transport.write(b"".join(head) + body)
            self.transport.close()

    return GuardedHttpToolsProtocol
