"""The Starlette application of a web node: ``create_app(settings)``.

Routes: ``/api/v1`` (``api.routes.TABLE``), ``/ws``, ``/healthz``, ``/readyz``,
``/metrics``, and the static UI (``web/``) at ``/``. The lifespan builds the
:class:`~api.node.Node` (Redis, the engine facade, the lazy PostgreSQL pool, the
market-data feeds and private pushes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import jsonio
from api.errors import ApiError
from api.gateway import METHODS
from api.limits import Limits
from api.node import Node
from api.p2p import routes as p2p_routes
from api.p2p import ws_methods as p2p_ws_methods
from api.routes import TABLE
from api.routing import starlette_routes
from api.ws import WebSocketEndpoint

log = logging.getLogger("hftx.app")

METHODS.update(p2p_ws_methods)

API_PREFIX = "/api/v1"
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
UI_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
    b"base-uri 'none'; form-action 'self'"
)


class SecurityHeaders:
    """Adds security headers to every HTTP response (raw ASGI: no per-request cost)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_api = scope["path"].startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS)
                if is_api:
                    headers.append((b"cache-control", b"no-store"))
                else:
                    headers.append((b"content-security-policy", UI_CSP))
                    # the page's files have no version in their names: revalidate (ETag,
                    # 304) on every load, or an upgraded node's modules mix with cached ones
                    headers.append((b"cache-control", b"no-cache"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def healthz(request: Request) -> Response:
    return jsonio.JSONResponse({"status": "ok"})


OPS_SHARE_S = 0.25  # /readyz and /metrics: one computation a quarter second, for all callers


class Shared:
    """The latest result of an expensive public ops route, computed at most once per
    ``ttl`` seconds whoever asks, concurrent callers included. Unauthenticated and not
    rate limited, a /metrics render (~20 ms of the event loop, plus Redis reads per
    market) or a /readyz (a Redis and a PostgreSQL round trip) per request let one
    client flooding them slow every trader on the node."""

    def __init__(self, ttl: float = OPS_SHARE_S) -> None:
        self.ttl = ttl
        self._value: Any = None
        self._at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, compute: Callable[[], Awaitable[Any]]) -> Any:
        if time.monotonic() - self._at < self.ttl:
            return self._value
        async with self._lock:  # one computes; the others take its result
            if time.monotonic() - self._at >= self.ttl:
                self._value = await compute()
                self._at = time.monotonic()
            return self._value


async def readyz(request: Request) -> Response:
    from engine.functions import library_source, loaded_version

    node: Node = request.app.state.node

    async def check() -> dict[str, bool]:
        checks = {"redis": False, "functions": False, "postgres": False}
        try:
            await node.redis.ping()
            checks["redis"] = True
            checks["functions"] = await loaded_version(node.redis) == library_source()[0]
        except Exception as exc:
            log.warning("readyz: redis check failed: %r", exc)
        checks["postgres"] = await node.db.ping()
        return checks

    checks = await request.app.state.readiness.get(check)
    ready = all(checks.values()) and not node.closing  # shutting down: at once
    return jsonio.JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks}, 200 if ready else 503
    )


async def metrics(request: Request) -> Response:
    node: Node = request.app.state.node

    async def render() -> bytes:
        await node.metrics.pipeline.refresh(node.redis)  # settler and drain, as Redis says now
        return node.metrics.render()

    body = await request.app.state.scrape.get(render)
    return Response(body, media_type=node.metrics.content_type)


async def api_not_found(request: Request) -> Response:
    """No API route took the request: 405 when the path exists with other methods."""
    allowed = sorted(
        method
        for route in request.app.router.routes
        if isinstance(route, Route) and route.endpoint is not api_not_found
        and route.matches(request.scope)[0] is Match.PARTIAL
        for method in route.methods or ()
    )  # fmt: skip
    if allowed:
        return jsonio.error_response(
            ApiError("METHOD_NOT_ALLOWED", "method not allowed"), {"Allow": ", ".join(allowed)}
        )
    return jsonio.error_response(ApiError("NOT_FOUND", "no such route"))


async def ws_over_http(request: Request) -> Response:
    """A plain HTTP request to ``/ws`` (no WebSocket handshake): 426 Upgrade Required
    with the ``Upgrade`` header RFC 9110 asks for, as WebSocket servers answer it."""
    return jsonio.error_response(
        ApiError("UPGRADE_REQUIRED", "/ws is a WebSocket endpoint: connect with a WebSocket"),
        {"Upgrade": "websocket", "Connection": "Upgrade"},
    )


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:  # Starlette's carries the Allow header a 405 must have
        return jsonio.error_response(
            ApiError("METHOD_NOT_ALLOWED", "method not allowed"), dict(exc.headers or {})
        )
    if exc.status_code == 404:
        return jsonio.error_response(ApiError("NOT_FOUND", "no such route"))
    code = {400: "INVALID_PARAM", 401: "UNAUTHORIZED", 403: "FORBIDDEN"}.get(
        exc.status_code, "INTERNAL"
    )
    return jsonio.error_response(ApiError(code, "request refused"))


async def server_error(request: Request, exc: Exception) -> Response:
    return jsonio.error_response(ApiError("INTERNAL", "internal error"))


def create_app(settings: Any = None, limits: Limits | None = None) -> Starlette:
    if settings is None:
        from ops.settings import get_settings

        settings = get_settings()
    node = Node(settings, limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await node.start()
        hooks = getattr(app.state, "startup_hooks", [])
        for hook in hooks:
            await hook(node)
        try:
            yield
        finally:
            await node.drain()
            await node.stop()

    routes: list[Any] = [
        *starlette_routes([*TABLE, *p2p_routes], API_PREFIX),
        Route(
            API_PREFIX + "/{rest:path}",
            api_not_found,
            # OPTIONS too (a CORS preflight is answered before routing): an unknown path
            # is 404 and a known one 405 with Allow, not the static files' bare 405
            methods=["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"],
        ),
        WebSocketRoute("/ws", WebSocketEndpoint()),
        Route("/ws", ws_over_http, methods=["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]
    if WEB_DIR.is_dir():
        routes.append(Mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web"))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.node = node
    app.state.startup_hooks = []
    app.state.readiness = Shared()
    app.state.scrape = Shared()
    if getattr(settings, "demo", False):
        from ops.demo import start as start_demo

        app.state.startup_hooks.append(start_demo)
    origins = [o for o in getattr(settings, "allowed_origins", []) or [] if o]
    if origins:  # browsers on the allowlisted origins may call the HTTP API too
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE", "PATCH"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Next-Cursor"],  # history pages (api.history_io.paged)
            max_age=600,
        )
    app.add_middleware(SecurityHeaders)
    return app
