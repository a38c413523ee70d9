"""The HTTP surface of the gateway (FastAPI on any ASGI server; ``ctd serve`` runs uvicorn).

========================  ======================================================================
``POST /v1/decide``       one input -> a decision (logged before the answer)
``POST /v1/decide/batch`` ``{"items": [...]}`` -> ``{"decisions": [...]}`` (at most ``max_batch``)
``GET /v1/budget``        realised rate, exact interval, live monitor state
``POST /v1/admin/reset``  operator reset of the monitor (resumes delegation after an alarm);
                          needs the separate *admin* token (disabled without one)
``GET /metrics``          Prometheus text format
``GET /healthz``          liveness (no token)
``GET /readyz``           readiness: 503 while the decision log cannot be written (no token)
========================  ======================================================================

Status codes: 401 without the right bearer token, 403 for an admin endpoint without the admin
token, 409 for a ``request_id`` already used with another payload (the body names the id), 413
for a body or batch over the limits (checked before the body is parsed), 422 for an invalid input
(the body names the field), 503 when the expert failed under the ``503`` policy (those inputs are
not decided; the body lists them), 500 when the log could not be written (nothing acknowledged).
Every error body is JSON with a ``detail``. A refused request writes no log row.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve.config import Token
from serve.decisionlog import IdConflict
from serve.gateway import ExpertUnavailable, Gateway, InputError
from serve.metrics import CONTENT_TYPE
from serve.schemas import BatchRequest, DecideRequest

log = logging.getLogger("ctd.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths served without a token.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
#: Paths that need the admin token (the decision token is not enough).
ADMIN_PREFIX = "/v1/admin/"


class GuardMiddleware:
    """Bearer-token check and request-size limit, before any parsing (pure ASGI, so it is cheap).

    The token is compared in constant time; neither it nor the request body is ever logged.
    """

    def __init__(
        self,
        app: ASGIApp,
        token: Token,
        max_body_bytes: int,
        gateway: Gateway,
        admin_token: Token | None = None,
        max_in_flight: int = 512,
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.token = token
        self.admin_token = admin_token
        self.max_body = max_body_bytes
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        if path.startswith(ADMIN_PREFIX):
            auth = headers.get("authorization")
            if self.admin_token is None or not self.admin_token.matches(auth):
                if self.token.matches(auth):
                    await self._refuse(
                        send,
                        403,
                        "admin endpoints need the admin token (--admin-token-file or "
                        "CTD_SERVE_ADMIN_TOKEN); the decision token is not enough",
                    )
                else:
                    await self._refuse(
                        send, 401, "missing or invalid bearer token", {"www-authenticate": "Bearer"}
                    )
                return
        elif path not in PUBLIC_PATHS and not self.token.matches(headers.get("authorization")):
            await self._refuse(
                send, 401, "missing or invalid bearer token", {"www-authenticate": "Bearer"}
            )
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._refuse(send, 413, f"request body over {self.max_body} bytes")
            return
        if self.in_flight >= self.max_in_flight:
            await self._refuse(
                send, 503, f"over the limit of {self.max_in_flight} requests in flight; retry",
                {"retry-after": "1"},
            )  # fmt: skip
            return
        self.in_flight += 1
        try:
            await self._serve(scope, receive, send, path)
        finally:
            self.in_flight -= 1

    async def _serve(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self._guarded(scope, receive, send)
            return
        # The body is read here while it streams in, counted against the limit before anything
        # parses it (chunked bodies have no Content-Length to check up front).
        chunks: list[bytes] = []
        seen, more = 0, True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            chunks.append(msg.get("body", b""))
            seen += len(chunks[-1])
            more = bool(msg.get("more_body"))
            if seen > self.max_body:
                await self._refuse(send, 413, f"request body over {self.max_body} bytes")
                return
        body = b"".join(chunks)
        handler = FAST_PATHS.get(path) if scope["method"] == "POST" else None
        if handler is not None:  # the decision endpoints, without the framework's routing
            try:
                status, content, extra = await handler(self.gateway, body)
            except Exception as exc:
                log.error("request failed: %s: %s", type(exc).__name__, exc)
                status, content, extra = 500, {"detail": INTERNAL}, None
                self.gateway.metrics.count_rejected(500)
            await _send_json(send, status, content, extra)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self._guarded(scope, replay, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; an unexpected error becomes a JSON 500 (when no answer was started)."""
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.error("request failed: %s: %s", type(exc).__name__, exc)
            if started:
                raise
            self.gateway.metrics.count_rejected(500)
            await _send_json(send, 500, {"detail": INTERNAL})

    async def _refuse(
        self, send: Send, status: int, detail: str, extra: dict[str, str] | None = None
    ) -> None:
        self.gateway.metrics.count_rejected(status)
        await _send_json(send, status, {"detail": detail}, extra)


INTERNAL = "internal error: the request was not decided (nothing acknowledged)"
Handled = tuple[int, Any, dict[str, str] | None]


async def _send_json(
    send: Send, status: int, content: Any, extra: dict[str, str] | None = None
) -> None:
    body = json.dumps(content, separators=(",", ":"), allow_nan=False).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    head += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def _invalid(gateway: Gateway, errors: list[dict[str, Any]]) -> Handled:
    gateway.metrics.count_rejected(422)
    return 422, {"detail": errors}, None


async def _decided(gateway: Gateway, reqs: list[DecideRequest], batch: bool) -> Handled:
    """Run the gateway; its refusals become their status codes."""
    try:
        out = await gateway.decide(reqs, batch=batch)
    except InputError as exc:
        return _invalid(
            gateway, [{"loc": ["body", *exc.loc], "msg": exc.msg, "type": "value_error"}]
        )
    except IdConflict as exc:
        gateway.metrics.count_rejected(409)
        return 409, {"detail": str(exc), "request_id": exc.request_id}, None
    except ExpertUnavailable as exc:
        body = {"detail": str(exc), "decisions": [d.model_dump() for d in exc.decisions]}
        return 503, body, {"retry-after": "5"}
    if batch:
        return 200, {"decisions": [d.model_dump() for d in out]}, None
    return 200, out[0].model_dump(), None


async def handle_decide(gateway: Gateway, body: bytes) -> Handled:
    """``POST /v1/decide``."""
    try:
        req = DecideRequest.model_validate_json(body)
    except ValidationError as exc:
        return _invalid(gateway, _loc_errors(exc, ["body"]))
    return await _decided(gateway, [req], batch=False)


async def handle_batch(gateway: Gateway, body: bytes) -> Handled:
    """``POST /v1/decide/batch``: the item count is checked before any item is validated."""
    limit = gateway.config.max_batch
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return _invalid(
            gateway, [{"loc": ["body"], "msg": f"invalid JSON ({exc})", "type": "json_invalid"}]
        )
    items = raw.get("items") if isinstance(raw, dict) else None
    if isinstance(items, list) and len(items) > limit:
        gateway.metrics.count_rejected(413)
        detail = [{"loc": ["body", "items"], "msg": f"at most {limit} items per batch",
                   "type": "too_long"}]  # fmt: skip
        return 413, {"detail": detail}, None
    try:
        req = BatchRequest.model_validate(raw)
    except ValidationError as exc:
        return _invalid(gateway, _loc_errors(exc, ["body"]))
    return await _decided(gateway, req.items, batch=True)


FAST_PATHS: dict[str, Callable[[Gateway, bytes], Awaitable[Handled]]] = {
    "/v1/decide": handle_decide,
    "/v1/decide/batch": handle_batch,
}


def _loc_errors(exc: ValidationError, prefix: list[str | int]) -> list[dict[str, Any]]:
    return [
        {"loc": [*prefix, *e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e["type"])}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(content, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def create_app(
    gateway: Gateway, token: Token, admin_token: Token | None = None, max_in_flight: int = 512
) -> FastAPI:
    """The ASGI application serving ``gateway``; closing the app (lifespan) closes the log.

    ``admin_token`` enables ``POST /v1/admin/reset`` (without it the endpoint answers 403).
    Beyond ``max_in_flight`` concurrent requests, new ones get a JSON 503 with ``Retry-After``.
    """
    if admin_token is not None and admin_token.same_as(token):
        from ctd_stats.errors import CTDInputError

        raise CTDInputError("the admin token must differ from the decision token")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        gateway.close()

    app = FastAPI(
        title="ctd gateway",
        summary="Certified delegation: probe first, expert when d > τ, every decision logged.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def invalid(errors: list[dict[str, Any]]) -> Response:
        gateway.metrics.count_rejected(422)
        return _json({"detail": errors}, 422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                "loc": list(e.get("loc", ())),
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        return invalid(errors)

    @app.exception_handler(InputError)
    async def _input(_: Request, exc: InputError) -> Response:
        return invalid([{"loc": ["body", *exc.loc], "msg": exc.msg, "type": "value_error"}])

    @app.exception_handler(IdConflict)
    async def _conflict(_: Request, exc: IdConflict) -> Response:
        gateway.metrics.count_rejected(409)
        return _json({"detail": str(exc), "request_id": exc.request_id}, 409)

    @app.exception_handler(ExpertUnavailable)
    async def _unavailable(_: Request, exc: ExpertUnavailable) -> Response:
        body = {"detail": str(exc), "decisions": [d.model_dump() for d in exc.decisions]}
        return _json(body, 503, {"retry-after": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        return _json({"detail": exc.detail}, exc.status_code, dict(exc.headers or {}))

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        ok, reason = await asyncio.get_running_loop().run_in_executor(None, gateway.ready)
        if ok:
            return _json({"status": "ready"})
        return _json({"status": "not ready", "detail": reason}, 503)

    @app.get("/v1/budget")
    async def budget() -> Response:
        return _json(gateway.budget_state())

    @app.post("/v1/admin/reset")
    async def reset() -> Response:
        state = await asyncio.get_running_loop().run_in_executor(None, gateway.reset)
        return _json(state)

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        text = gateway.metrics.render(gateway.gauges())
        return PlainTextResponse(text, media_type=CONTENT_TYPE)

    app.add_middleware(
        GuardMiddleware,
        token=token,
        max_body_bytes=gateway.config.max_body_bytes,
        gateway=gateway,
        admin_token=admin_token,
        max_in_flight=max_in_flight,
    )
    return app
