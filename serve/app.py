"""The HTTP surface of the gateway (FastAPI on any ASGI server; ``ctd serve`` runs uvicorn).

========================  ======================================================================
``POST /v1/decide``       one input -> a decision (logged before the answer)
``POST /v1/decide/batch`` ``{"items": [...]}`` -> ``{"decisions": [...]}`` (at most ``max_batch``)
``GET /v1/budget``        realised rate, exact interval, live monitor state
``POST /v1/admin/reset``  operator reset of the monitor (resumes delegation after an alarm)
``GET /metrics``          Prometheus text format
``GET /healthz``          liveness; the only endpoint without the bearer token
========================  ======================================================================

Status codes: 401 without the right bearer token, 413 for a body or batch over the limits, 422 for
an invalid input (the body names the field), 503 when the expert failed under the ``503`` policy
(the decisions were logged; the body lists them). A refused request writes no log row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from serve.config import Token
from serve.gateway import ExpertUnavailable, Gateway, InputError
from serve.schemas import BatchRequest, DecideRequest

log = logging.getLogger("ctd.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths served without a token.
PUBLIC_PATHS = frozenset({"/healthz"})


class GuardMiddleware:
    """Bearer-token check and request-size limit, before any parsing (pure ASGI, so it is cheap).

    The token is compared in constant time; neither it nor the request body is ever logged.
    """

    def __init__(self, app: ASGIApp, token: Token, max_body_bytes: int, gateway: Gateway) -> None:
        self.app = app
        self.token = token
        self.max_body = max_body_bytes
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["path"] not in PUBLIC_PATHS and not self.token.matches(
            headers.get("authorization")
        ):
            await self._refuse(
                send, 401, "missing or invalid bearer token", {"www-authenticate": "Bearer"}
            )
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._refuse(send, 413, f"request body over {self.max_body} bytes")
            return
        if length is None and scope["method"] in ("POST", "PUT", "PATCH"):
            # A body without Content-Length (chunked) is read here, up to the limit, then replayed.
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
            sent = False

            async def replay() -> Message:
                nonlocal sent
                if sent:
                    return await receive()
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)

    async def _refuse(
        self, send: Send, status: int, detail: str, extra: dict[str, str] | None = None
    ) -> None:
        self.gateway.metrics.count_rejected(status)
        body = json.dumps({"detail": detail}).encode()
        head = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        head += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})


def create_app(gateway: Gateway, token: Token) -> FastAPI:
    """The ASGI application serving ``gateway``; closing the app (lifespan) closes the log."""

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
    )
    limit = gateway.config.max_batch

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        gateway.metrics.count_rejected(422)
        errors = [
            {
                "loc": list(e.get("loc", ())),
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(InputError)
    async def _input(_: Request, exc: InputError) -> JSONResponse:
        gateway.metrics.count_rejected(422)
        detail = [{"loc": ["body", *exc.loc], "msg": exc.msg, "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(ExpertUnavailable)
    async def _unavailable(_: Request, exc: ExpertUnavailable) -> JSONResponse:
        body = {"detail": str(exc), "decisions": [d.model_dump() for d in exc.decisions]}
        return JSONResponse(body, status_code=503, headers={"retry-after": "5"})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/decide")
    async def decide(req: DecideRequest) -> JSONResponse:
        (d,) = await gateway.decide([req])
        return JSONResponse(d.model_dump())

    @app.post("/v1/decide/batch")
    async def decide_batch(req: BatchRequest) -> JSONResponse:
        if len(req.items) > limit:
            gateway.metrics.count_rejected(413)
            return JSONResponse(
                {
                    "detail": [
                        {
                            "loc": ["body", "items"],
                            "msg": f"at most {limit} items per batch",
                            "type": "too_long",
                        }
                    ]
                },
                status_code=413,
            )
        out = await gateway.decide(req.items, batch=True)
        return JSONResponse({"decisions": [d.model_dump() for d in out]})

    @app.get("/v1/budget")
    async def budget() -> dict[str, Any]:
        return gateway.budget_state()

    @app.post("/v1/admin/reset")
    async def reset() -> dict[str, Any]:
        return gateway.reset()

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        text = gateway.metrics.render(gateway.gauges())
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    app.add_middleware(
        GuardMiddleware, token=token, max_body_bytes=gateway.config.max_body_bytes, gateway=gateway
    )
    return app
