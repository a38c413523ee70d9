"""A local OpenAI-compatible stub server on loopback, and response builders, for the HTTP expert tests."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]]
Behaviour = Callable[[str, Any, int, dict[str, str]], Reply]


class StubServer:
    """An OpenAI-compatible stub on 127.0.0.1 (ephemeral port), in a daemon thread.

    ``behaviour(path, json_body_or_None, request_index, headers)`` returns ``(status, body)`` or
    ``(status, body, headers)``; a ``bytes``/``str`` body is sent as is, anything else as JSON;
    ``("sleep", seconds)`` as body waits (interruptibly) before a 200 answer. The server answers at
    most ``max_requests`` requests (then 503) and stops itself after ``lifetime_s`` seconds.
    """

    def __init__(self, behaviour: Behaviour, *, max_requests: int = 200, lifetime_s: float = 30.0):
        self.behaviour = behaviour
        self.max_requests = max_requests
        self.requests: list[tuple[str, Any, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                headers = {k.lower(): v for k, v in self.headers.items()}
                with stub._lock:
                    index = len(stub.requests)
                    stub.requests.append((self.path, body, headers))
                if index >= stub.max_requests:
                    self._send(503, b"request budget of the stub exhausted", {})
                    return
                reply = stub.behaviour(self.path, body, index, headers)
                status, payload = reply[0], reply[1]
                extra = reply[2] if len(reply) > 2 else {}
                if isinstance(payload, tuple) and payload[0] == "sleep":
                    stub._stop.wait(payload[1])
                    payload = {"late": True}
                self._send(status, payload, extra)

            def _send(self, status: int, payload: Any, extra: dict[str, str]) -> None:
                if isinstance(payload, str):
                    data = payload.encode()
                elif isinstance(payload, bytes):
                    data = payload
                else:
                    data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout test)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(lifetime_s, self.close)
        self._timer.daemon = True
        self._timer.start()

    def close(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self.server.shutdown()
            self.server.server_close()
            self._timer.cancel()


def chat_body(
    top: list[tuple[str, float]],
    *,
    lead: list[str] = (),
    usage: dict | None = None,
    content: str | None = None,
) -> dict[str, Any]:
    entries = [
        {"token": t, "logprob": -0.01, "top_logprobs": [{"token": t, "logprob": -0.01}]}
        for t in lead
    ]
    entries.append(
        {
            "token": top[0][0],
            "logprob": top[0][1],
            "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top],
        }
    )
    body: dict[str, Any] = {
        "choices": [
            {
                "message": {"role": "assistant", "content": content or top[0][0]},
                "logprobs": {"content": entries},
            }
        ]
    }
    if usage is not None:
        body["usage"] = usage
    return body


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))
