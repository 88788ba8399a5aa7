"""The HTTP route table: every route declares its policy (public, user, admin).

:class:`ApiRoute` is one row; :func:`starlette_routes` turns the table into
Starlette routes whose endpoint authenticates and authorises per the policy
before the handler runs, applies the rate limits and maps every failure to the
PROTOCOL.md error body. A route without a policy cannot be declared.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from redis.exceptions import RedisError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from api import jsonio
from api.auth import client_ip, http_principal
from api.errors import ApiError, from_engine, internal, unavailable
from api.tokens import Principal
from engine.types import EngineError

if TYPE_CHECKING:
    from api.node import Node

log = logging.getLogger("hftx.http")

Policy = Literal["public", "user", "admin"]
POLICIES = ("public", "user", "admin")
_UINT = re.compile(r"^[0-9]{1,9}\Z")
BODILESS = ("GET", "DELETE")  # their parameters are in the path and the query


@dataclass(slots=True)
class Call:
    """What a handler gets: the request, the node and the authenticated caller."""

    request: Request
    node: Node
    principal: Principal | None

    @property
    def user_id(self) -> str:
        assert self.principal is not None
        return self.principal.user_id

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])

    async def json(self) -> Any:
        """The body as a JSON object ({} when empty), within the size and depth limits."""
        limit = self.node.limits.http_max_body
        length = self.request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise ApiError("PAYLOAD_TOO_LARGE", f"body larger than {limit} bytes")
        body = bytearray()
        async for chunk in self.request.stream():
            body += chunk
            if len(body) > limit:
                raise ApiError("PAYLOAD_TOO_LARGE", f"body larger than {limit} bytes")
        if not body.strip():
            return {}
        return jsonio.loads_object(bytes(body))

    async def no_body(self) -> None:
        """Refuse content on a route that takes none (``{}`` counts as none).

        A ``DELETE /orders`` body of ``{"market": ...}`` (parameters where Binance
        also reads them) would otherwise be ignored and cancel every market's orders.
        """
        headers = self.request.headers
        if "content-length" not in headers and "transfer-encoding" not in headers:
            return
        if await self.json():
            raise ApiError("INVALID_PARAM", "this route takes no body")

    def query(self, *allowed: str) -> dict[str, str]:
        """The query parameters; an empty one (``?market=``) counts as not given."""
        params = self.request.query_params
        for key in params:
            if key not in allowed:
                raise ApiError("INVALID_PARAM", f"unknown query parameter {key[:40]}")
        if len(params.multi_items()) != len(params):
            raise ApiError("INVALID_PARAM", "repeated query parameter")
        return {key: value for key, value in params.items() if value != ""}

    def int_query(self, query: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
        raw = query.get(name)
        if raw is None:
            return default
        if not _UINT.match(raw) or not lo <= int(raw) <= hi:
            raise ApiError("INVALID_PARAM", f"{name} must be an integer {lo}..{hi}")
        return int(raw)


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ApiRoute:
    method: str
    path: str
    policy: Policy
    handler: Handler
    status: int = 200

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"{self.method} {self.path}: policy must be one of {POLICIES}")


def error_response(err: ApiError) -> Response:
    headers = {}
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="hftx"'
    elif err.status == 429:
        headers["Retry-After"] = "1"
    return jsonio.error_response(err, headers)


async def authorized(node: Node, route: ApiRoute, request: Request) -> Any:
    """The route's policy (and rate limit) checked, then its handler's result."""
    principal = None
    if route.policy == "public":
        allowed = node.ip_limiter.allow(client_ip(request))
    else:
        principal = await http_principal(node, request)
        if route.policy == "admin" and principal.role != "admin":
            raise ApiError("FORBIDDEN", "admin only")
        allowed = node.user_limiter.allow(principal.user_id)
    if not allowed:
        raise ApiError("RATE_LIMITED", "too many requests")
    call = Call(request, node, principal)
    if route.method in BODILESS:
        await call.no_body()
    else:
        call.query()  # POST/PATCH take their parameters in the body only
    return await route.handler(call)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.debug("request abandoned at its deadline ended with %r", exc)


async def within_deadline(seconds: float, work: Awaitable[Any]) -> Any:
    """``work``, or TimeoutError as soon as ``seconds`` have passed. The work is then
    cancelled and finishes its cleanup detached: psycopg answers a cancellation by
    asking the server to cancel the query and waits up to 2 x 5 s for it, so a hung
    (not down) PostgreSQL would otherwise hold the answer ~20 s instead of the
    request timeout. HTTP only: no WebSocket method waits on PostgreSQL, and an extra
    task per order would cost the hot path."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.wait_for(asyncio.shield(task), seconds)
    except TimeoutError:
        task.cancel()
        task.add_done_callback(_retrieve)
        raise
    except asyncio.CancelledError:  # the server cancelled us (shutdown): the work too
        task.cancel()
        raise


def endpoint(route: ApiRoute) -> Callable[[Request], Awaitable[Response]]:
    label = f"{route.method} {route.path}"

    async def run(request: Request) -> Response:
        node: Node = request.app.state.node
        started = time.perf_counter()
        try:
            # then 503: outcome unknown
            result = await within_deadline(
                node.limits.request_timeout, authorized(node, route, request)
            )
            response = (
                result
                if isinstance(result, Response)
                else jsonio.JSONResponse(result, route.status)
            )
        except ApiError as err:
            response = error_response(err)
        except EngineError as exc:
            response = error_response(from_engine(exc))
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("%s: redis unavailable: %r", label, exc)
            response = error_response(unavailable())
        except ClientDisconnect:  # the client left while sending its body: nobody to answer
            response = error_response(ApiError("INVALID_PARAM", "client disconnected"))
        except Exception:
            log.exception("%s failed", label)
            response = error_response(internal())
        node.metrics.http_request(label, response.status_code, time.perf_counter() - started)
        return response

    run.api_route = route  # type: ignore[attr-defined]  # the test of policies finds it here
    return run


def starlette_routes(table: list[ApiRoute], prefix: str = "") -> list[Route]:
    return [
        Route(prefix + r.path, endpoint(r), methods=[r.method], name=f"{r.method} {r.path}")
        for r in table
    ]
