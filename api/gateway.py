"""WebSocket methods (PROTOCOL.md "WebSocket /ws"): the method table and dispatch.

Each method declares its policy: ``open`` (allowed before ``auth``: only ``auth``
itself) or ``user``. Handlers get ``(node, conn, params)`` and return the
``result``; a :class:`Deferred` result also carries work to run right after the
answer is queued (subscription snapshots, so they follow the answer and no update
can slip in between).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson
from redis.exceptions import RedisError

from api import auth, service
from api import schemas as S
from api.connection import CLOSE_AUTH, CLOSE_FLOOD, CLOSE_TOO_BIG, Connection
from api.errors import ApiError, from_engine, internal, unavailable
from api.jsonio import MAX_DEPTH, depth_of, duplicate_key
from api.ratelimit import FloodMeter
from engine.types import EngineError

if TYPE_CHECKING:
    from api.node import Node

log = logging.getLogger("hftx.ws")

Policy = Literal["open", "user"]
Handler = Callable[["Node", Connection, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    policy: Policy
    handler: Handler


@dataclass(frozen=True, slots=True)
class Deferred:
    result: Any
    after: Callable[[], None]


def _user(conn: Connection) -> str:
    assert conn.principal is not None
    return conn.principal.user_id


# -- methods -----------------------------------------------------------------------


async def m_ping(node: Node, conn: Connection, params: Any) -> Any:
    S.parse(S.Empty, params)
    return {"ts": service.now_ms()}


async def m_auth(node: Node, conn: Connection, params: Any) -> Any:
    p = S.parse(S.AuthParams, params)
    principal = await auth.authenticate(node, p.token)
    previous = conn.principal
    if previous is not None and previous.user_id != principal.user_id:
        raise ApiError("FORBIDDEN", "a socket stays with the user it authenticated as")
    if previous is None and node.hub.count(principal.user_id) >= node.limits.ws_conns_per_user:
        raise ApiError("RATE_LIMITED", "too many connections for this user")
    conn.principal = principal
    if previous is None:
        node.hub.add(conn)
    if conn.expiry is not None:
        conn.expiry.cancel()
    delay = max(0.0, principal.exp - time.time())
    conn.expiry = asyncio.get_running_loop().call_later(
        delay, conn.close_soon, CLOSE_AUTH, "token expired"
    )
    # a timestamp, so milliseconds like every other one (PROTOCOL.md); the JWT's exp is in s
    return {
        "user_id": principal.user_id,
        "role": principal.role,
        "expires_at": principal.exp * 1000,
    }


def _orders_filter_given_empty(p: S.Subscribe) -> None:
    """``markets: []`` on ``orders`` filters nothing: refused, rather than read as "every
    market" (subscribe) or "end the channel" (unsubscribe)."""
    if p.channel == "orders" and p.markets is not None and not p.markets:
        raise ApiError("INVALID_PARAM", "markets, when given, is a non-empty list")


# private channels whose pushes concern no market: ``markets`` is ignored on them
NO_MARKETS = ("balances", "notifications")


async def m_subscribe(node: Node, conn: Connection, params: Any) -> Any:
    p = S.parse(S.Subscribe, params)
    if p.channel in S.PRIVATE_CHANNELS:
        _orders_filter_given_empty(p)
        if p.depth is not None:
            raise ApiError("INVALID_PARAM", "depth is only for the book channel")
        given = None if p.channel in NO_MARKETS else p.markets
        only = frozenset(given) if given else None
        if only is not None and p.channel == "orders":  # a filter of listed markets
            for market_id in only:
                await service.market(node, market_id)
        if p.channel in conn.private:  # adds to the subscription, like the public channels
            before = conn.private[p.channel]
            only = None if before is None or only is None else before | only
        conn.private[p.channel] = only
        await node.hub.listen(conn)
        result: dict[str, Any] = {"channel": p.channel}
        if given:
            result["markets"] = list(dict.fromkeys(given))
        return result
    if not p.markets:
        raise ApiError("INVALID_PARAM", "markets is required (a non-empty list)")
    if p.depth is not None and p.channel != "book":
        raise ApiError("INVALID_PARAM", "depth is only for the book channel")
    depth = p.depth or S.DEFAULT_BOOK_DEPTH
    markets = list(dict.fromkeys(p.markets))
    feeds = [await node.marketdata.feed(m) for m in markets]
    channel = p.channel

    def after() -> None:
        for feed in feeds:
            if conn.closed:
                return
            if channel == "book":
                conn.push(feed.subscribe_book(conn, depth))
            elif channel == "trades":
                feed.trades.add(conn)
            elif channel == "ticker":
                feed.tickers.add(conn)
                conn.push(service_ticker(feed))
            else:
                feed.heartbeats.add(conn)

    result = {"channel": channel, "markets": markets}
    if channel == "book":
        result["depth"] = depth
    return Deferred(result, after)


def service_ticker(feed: Any) -> str:
    return orjson.dumps(feed.ticker()).decode()


async def m_unsubscribe(node: Node, conn: Connection, params: Any) -> Any:
    p = S.parse(S.Subscribe, params)
    # a market filter names listed markets, as on subscribe (nothing is changed by a
    # request naming one that is not); a market named twice counts once. Ignored on
    # balances and notifications: the channel ends, whatever markets it names
    given = None if p.channel in NO_MARKETS else p.markets
    markets = list(dict.fromkeys(given)) if given else None
    for market_id in markets or ():
        await service.market(node, market_id)
    if p.channel in S.PRIVATE_CHANNELS:
        _orders_filter_given_empty(p)
        only = conn.private.get(p.channel)
        left = only - frozenset(markets) if only is not None and markets else frozenset()
        if left:  # the other markets of an orders filter stay subscribed
            conn.private[p.channel] = left
        else:
            conn.private.pop(p.channel, None)
        if not conn.private:
            await node.hub.unlisten(conn)
        return {"channel": p.channel, **({"markets": markets} if markets else {})}
    if not markets:
        raise ApiError("INVALID_PARAM", "markets is required (a non-empty list)")
    for market_id in markets:
        feed = node.marketdata.feeds.get(market_id)
        if feed is None:
            continue
        if p.channel == "book":
            feed.unsubscribe_book(conn)
        elif p.channel == "trades":
            feed.trades.discard(conn)
        elif p.channel == "ticker":
            feed.tickers.discard(conn)
        else:
            feed.heartbeats.discard(conn)
    return {"channel": p.channel, "markets": markets}


async def m_place(node: Node, conn: Connection, params: Any) -> Any:
    order = await service.place_order(node, _user(conn), params)
    conn.orders.placed(order)
    return order


async def m_cancel_on_disconnect(node: Node, conn: Connection, params: Any) -> Any:
    p = S.parse(S.CancelOnDisconnect, params)
    conn.orders.enabled = p.enabled
    return {"enabled": p.enabled}


async def m_cancel(node: Node, conn: Connection, params: Any) -> Any:
    order = await service.cancel_order(node, _user(conn), params)
    conn.orders.ended([order])
    return order


async def m_amend(node: Node, conn: Connection, params: Any) -> Any:
    return await service.amend_order(node, _user(conn), params)


async def m_cancel_all(node: Node, conn: Connection, params: Any) -> Any:
    orders = await service.cancel_all(node, _user(conn), params)
    conn.orders.ended(orders)
    return orders


async def m_open_orders(node: Node, conn: Connection, params: Any) -> Any:
    return await service.open_orders(node, _user(conn), params)


async def m_get_order(node: Node, conn: Connection, params: Any) -> Any:
    return await service.get_order(node, _user(conn), params)


async def m_balances(node: Node, conn: Connection, params: Any) -> Any:
    return await service.balances(node, _user(conn), params)


async def m_addresses(node: Node, conn: Connection, params: Any) -> Any:
    return await service.addresses(node, _user(conn), params)


async def m_transfer(node: Node, conn: Connection, params: Any) -> Any:
    return await service.transfer(node, _user(conn), params)


async def m_withdraw(node: Node, conn: Connection, params: Any) -> Any:
    return await service.request_withdrawal(node, _user(conn), params)


async def m_withdrawals(node: Node, conn: Connection, params: Any) -> Any:
    return await service.withdrawals(node, _user(conn), params)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("auth", "open", m_auth),
        Method("ping", "user", m_ping),
        Method("subscribe", "user", m_subscribe),
        Method("unsubscribe", "user", m_unsubscribe),
        Method("order.place", "user", m_place),
        Method("order.cancel", "user", m_cancel),
        Method("order.amend", "user", m_amend),
        Method("order.cancel_all", "user", m_cancel_all),
        Method("orders.open", "user", m_open_orders),
        Method("session.cancel_on_disconnect", "user", m_cancel_on_disconnect),
        Method("order.get", "user", m_get_order),
        Method("balances.get", "user", m_balances),
        Method("addresses.get", "user", m_addresses),
        Method("transfers.create", "user", m_transfer),
        Method("withdrawals.create", "user", m_withdraw),
        Method("withdrawals.get", "user", m_withdrawals),
    )
}

_ENVELOPE = frozenset(("id", "method", "params"))
# the 5th request refused before `auth` (401 or a malformed frame's 400) closes the
# socket with 4401
MAX_REFUSED_BEFORE_AUTH = 5


def _answer(req_id: Any, status: int, body: dict[str, Any]) -> str:
    return orjson.dumps({"id": req_id, "status": status, **body}).decode()


def error_answer(req_id: Any, err: ApiError) -> str:
    body: dict[str, Any] = {"error": err.body()}
    if err.code == "DUPLICATE_CLIENT_ORDER_ID" and "order" in err.extra:
        body["result"] = err.extra["order"]
    return _answer(req_id, err.status, body)


def _valid_id(value: Any) -> bool:
    if type(value) is int:
        return -(2**63) <= value < 2**63
    return isinstance(value, str) and 0 < len(value) <= 36


class Session:
    """Per-connection request state: rate limiting, flood detection, dispatch."""

    def __init__(self, node: Node, conn: Connection, ip: str) -> None:
        self.node = node
        self.conn = conn
        self.ip = ip
        self.flood = FloodMeter(node.limits.flood_refusals)

    async def refuse(self, text: str, err: ApiError) -> None:
        """Answer a request over the rate limit; close the socket 4429 if it floods."""
        try:
            request = orjson.loads(text)
            req_id = request.get("id") if isinstance(request, dict) else None
        except orjson.JSONDecodeError:
            req_id = None
        self.conn.push(error_answer(req_id if _valid_id(req_id) else None, err))
        if self.flood.refused():
            await self.conn.close_after_flush(CLOSE_FLOOD, "flooding")

    async def refused_before_auth(self) -> None:
        """Count a request refused before `auth` (401 for a method, 400 for a malformed
        frame or `auth`); the MAX_REFUSED_BEFORE_AUTH-th closes the socket 4401."""
        conn = self.conn
        conn.refused_before_auth += 1
        if conn.refused_before_auth >= MAX_REFUSED_BEFORE_AUTH:
            await conn.close_after_flush(CLOSE_AUTH, "auth required")

    async def handle(self, text: str) -> None:
        conn, node = self.conn, self.node
        if conn.closed:
            return
        if len(text) > node.limits.ws_max_frame:
            conn.close_soon(CLOSE_TOO_BIG, "frame too large")
            return
        key = conn.user_id
        allowed = (
            node.user_limiter.allow(key) if key is not None else node.ip_limiter.allow(self.ip)
        )
        if not allowed:
            await self.refuse(text, ApiError("RATE_LIMITED", "too many requests"))
            return
        req_id: Any = None
        started = time.perf_counter()
        name = "?"
        try:
            try:
                request = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise ApiError("INVALID_PARAM", "frame is not valid JSON") from None
            if not isinstance(request, dict):
                raise ApiError("INVALID_PARAM", "a request is a JSON object")
            req_id = request.get("id")
            duplicate = duplicate_key(text, request)
            if not _valid_id(req_id) or duplicate == ("id", True):
                req_id = None  # an id given twice is no id: the answer has id null
            if duplicate is not None:
                raise ApiError("INVALID_PARAM", f"duplicate key {duplicate[0][:40]}")
            if req_id is None:
                raise ApiError("INVALID_PARAM", "id must be an integer or a string of 1..36 chars")
            if not _ENVELOPE.issuperset(request):
                raise ApiError("INVALID_PARAM", "a request has only id, method and params")
            name = request.get("method")  # type: ignore[assignment]
            method = METHODS.get(name) if isinstance(name, str) else None
            if conn.principal is None and (method is None or method.policy != "open"):
                # Answered, not processed; the socket stays open for `auth` (Binance's
                # WS API does the same) unless a client keeps at it.
                conn.push(error_answer(req_id, ApiError("UNAUTHORIZED", "send auth first")))
                await self.refused_before_auth()
                return
            if method is None:
                name = "?"
                raise ApiError("INVALID_PARAM", "unknown method")
            params = request.get("params")
            nested = isinstance(params, list) or (
                isinstance(params, dict)
                and any(isinstance(v, dict | list) for v in params.values())
            )
            if nested and depth_of(params) > MAX_DEPTH - 1:
                raise ApiError("INVALID_PARAM", "params nested too deeply")
            async with asyncio.timeout(node.limits.request_timeout):  # then 503: outcome unknown
                result = await method.handler(node, conn, params)
        except ApiError as err:
            node.metrics.ws_request(name, err.status, time.perf_counter() - started)
            if err.code == "UNAUTHORIZED" and name == "auth":
                conn.push(error_answer(req_id, err))
                await conn.close_after_flush(CLOSE_AUTH, "auth failed")
                return
            conn.push(error_answer(req_id, err))
            if conn.principal is None:  # garbage before auth counts as a 401 does
                await self.refused_before_auth()
            return
        except EngineError as exc:
            refusal = from_engine(exc)
            node.metrics.ws_request(name, refusal.status, time.perf_counter() - started)
            conn.push(error_answer(req_id, refusal))
            return
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("ws %s: redis error: %r", name, exc)
            conn.push(error_answer(req_id, unavailable()))
            return
        except Exception:
            log.exception("ws %s failed", name)
            conn.push(error_answer(req_id, internal()))
            return
        node.metrics.ws_request(name, 200, time.perf_counter() - started)
        if isinstance(result, Deferred):
            conn.push(_answer(req_id, 200, {"result": result.result}))
            result.after()
        else:
            await conn.answer(_answer(req_id, 200, {"result": result}))
