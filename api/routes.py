"""HTTP ``/api/v1`` (PROTOCOL.md "HTTP"): the route table and its handlers.

``TABLE`` is the single list of routes; each row's policy (public, user, admin)
is enforced by ``api.routing`` before the handler runs.
"""

from __future__ import annotations

import re
from typing import Any

from api import auth, service
from api import schemas as S
from api.errors import ApiError
from api.routing import ApiRoute, Call
from api.users import User
from engine.settlement import FEES_USER

MAX_LIMIT = 1000
INTERVALS = ("1m", "5m", "1h", "1d")


def _market_id(call: Call) -> str:
    market_id = call.path("market_id")
    if not S.MARKET_ID.match(market_id):
        raise ApiError("UNKNOWN_MARKET", "unknown market")
    return market_id


async def _market_filter(call: Call, query: dict[str, str]) -> str | None:
    """The ``market`` query filter, a listed market (else UNKNOWN_MARKET) or None."""
    market_id = query.get("market")
    if market_id is not None:
        if not S.MARKET_ID.match(market_id):
            raise ApiError("UNKNOWN_MARKET", "unknown market")
        await service.market(call.node, market_id)
    return market_id


# -- auth --------------------------------------------------------------------------


async def signup(call: Call) -> Any:
    return await auth.signup(call.node, await call.json(), auth.client_ip(call.request))


async def login(call: Call) -> Any:
    return await auth.login(call.node, await call.json(), auth.client_ip(call.request))


async def logout(call: Call) -> Any:
    assert call.principal is not None
    await _empty_body(call)
    return await auth.logout(call.node, call.principal)


async def refresh(call: Call) -> Any:
    assert call.principal is not None
    await _empty_body(call)
    return await auth.refresh(call.node, call.principal)


async def me(call: Call) -> Any:
    assert call.principal is not None
    call.query()
    out: dict[str, Any] = {"user_id": call.user_id, "role": call.principal.role}
    try:
        user = await call.node.users.by_id(call.user_id)
    except ApiError:
        user = None
    if user is not None:
        out["email"] = user.email
    return out


# -- public ------------------------------------------------------------------------


async def server_time(call: Call) -> Any:
    call.query()
    return service.now()


async def assets(call: Call) -> Any:
    call.query()
    listed = await service.listed_assets(call.node)
    return [{"symbol": s, "scale": n} for s, n in sorted(listed.items())]


async def markets(call: Call) -> Any:
    call.query()
    return await service.markets(call.node)


async def market(call: Call) -> Any:
    call.query()
    from engine.units import market_to_wire

    # read now, as GET /markets: a status set on another node a moment ago shows
    return market_to_wire(await service.market(call.node, _market_id(call), fresh=True))


async def book(call: Call) -> Any:
    query = call.query("depth")
    depth = call.int_query(query, "depth", S.DEFAULT_BOOK_DEPTH, 1, S.MAX_BOOK_DEPTH)
    market_id = _market_id(call)
    m = await service.market(call.node, market_id)
    snap = await call.node.ex.book(market_id, depth)
    from api.l2 import Formatter, checksum

    fmt = Formatter(m)
    bids, asks = fmt.levels(snap.bids), fmt.levels(snap.asks)
    return {
        "market": market_id,
        "seq": snap.seq,
        "bids": bids,
        "asks": asks,
        "checksum": checksum(bids, asks),
        "ts": service.now_ms(),
    }


async def trades(call: Call) -> Any:
    query = call.query("limit")
    limit = call.int_query(query, "limit", 50, 1, MAX_LIMIT)
    from api import history_io

    return await history_io.recent_trades(call.node, _market_id(call), limit)


async def ticker(call: Call) -> Any:
    call.query()
    feed = await call.node.marketdata.feed(_market_id(call))
    out = feed.ticker()
    del out["channel"], out["type"]
    return out


async def candles(call: Call) -> Any:
    query = call.query("interval", "limit", "start", "end")
    interval = query.get("interval", "1m")
    if interval not in INTERVALS:
        raise ApiError("INVALID_PARAM", f"interval must be one of {', '.join(INTERVALS)}")
    limit = call.int_query(query, "limit", 100, 1, MAX_LIMIT)
    start, end = _ts_query(query, "start"), _ts_query(query, "end")
    if start is not None and end is not None and start > end:
        # a swapped pair, not an empty window (Binance: "Start time is greater than end time")
        raise ApiError("INVALID_PARAM", "start must not be after end")
    market_id = _market_id(call)
    m = await service.market(call.node, market_id)
    from api import history_io

    return await history_io.candles(call.node, m, interval, limit, start, end)


# -- private -----------------------------------------------------------------------


async def place_order(call: Call) -> Any:
    return await service.place_order(call.node, call.user_id, await call.json())


async def list_orders(call: Call) -> Any:
    query = call.query("status", "market", "limit", "cursor")
    limit = call.int_query(query, "limit", 100, 1, MAX_LIMIT)
    status = query.get("status", "open")
    market_id = await _market_filter(call, query)
    if status == "open":
        if "cursor" in query:
            raise ApiError("INVALID_PARAM", "open orders come in one page: no cursor")
        params = {"market": market_id} if market_id else {}
        opened = await service.open_orders(call.node, call.user_id, params)
        # every open order unless a limit is given (then the oldest ones), as orders.open
        return opened[:limit] if "limit" in query else opened
    if status not in ("closed", "all"):
        raise ApiError("INVALID_PARAM", "status must be open, closed or all")
    from api import history_io

    cursor = query.get("cursor")
    return await history_io.orders(call.node, call.user_id, market_id, status, limit, cursor)


_TS = re.compile(r"^[0-9]{1,16}\Z")
MAX_TS = 2**53 - 1


def _ts_query(query: dict[str, str], name: str) -> int | None:
    """A time in milliseconds since the epoch, or None if not given."""
    raw = query.get(name)
    if raw is None:
        return None
    if not _TS.match(raw) or int(raw) > MAX_TS:
        raise ApiError("INVALID_PARAM", f"{name} must be milliseconds since the epoch")
    return int(raw)


CLIENT_ID_PREFIX = "client:"  # /orders/client:<client_order_id>, as Coinbase's API


def _order_ref(call: Call) -> dict[str, str]:
    """``{order_id}`` or, for ``client:<id>``, ``{client_order_id}`` of the path."""
    ref = call.path("order_id")
    if ref.startswith(CLIENT_ID_PREFIX):
        return {"client_order_id": ref[len(CLIENT_ID_PREFIX) :]}
    return {"order_id": ref}


async def get_order(call: Call) -> Any:
    call.query()
    ref = _order_ref(call)
    if "client_order_id" in ref:
        return await service.get_order(call.node, call.user_id, ref)
    from api import history_io

    return await history_io.order(call.node, call.user_id, ref["order_id"])


async def cancel_order(call: Call) -> Any:
    call.query()
    return await service.cancel_order(call.node, call.user_id, _order_ref(call))


async def amend_order(call: Call) -> Any:
    call.query()
    body = await call.json()
    if not isinstance(body, dict):
        raise ApiError("INVALID_PARAM", "body must be a JSON object")
    if body.get("order_id") is not None or body.get("client_order_id") is not None:
        raise ApiError("INVALID_PARAM", "the order is named by the path")
    return await service.amend_order(call.node, call.user_id, {**body, **_order_ref(call)})


async def cancel_all(call: Call) -> Any:
    query = call.query("market")
    return await service.cancel_all(call.node, call.user_id, query)


async def fills(call: Call) -> Any:
    query = call.query("market", "limit", "cursor")
    market_id = await _market_filter(call, query)
    limit = call.int_query(query, "limit", 100, 1, MAX_LIMIT)
    from api import history_io

    return await history_io.fills(call.node, call.user_id, market_id, limit, query.get("cursor"))


async def balances(call: Call) -> Any:
    call.query()
    return await service.balances(call.node, call.user_id)


async def addresses(call: Call) -> Any:
    call.query()
    return await service.addresses(call.node, call.user_id)


async def transfer(call: Call) -> Any:
    return await service.transfer(call.node, call.user_id, await call.json())


async def withdraw(call: Call) -> Any:
    return await service.request_withdrawal(call.node, call.user_id, await call.json())


async def withdrawals(call: Call) -> Any:
    call.query()
    return await service.withdrawals(call.node, call.user_id)


# -- admin -------------------------------------------------------------------------


async def admin_deposit(call: Call) -> Any:
    return await service.deposit(call.node, await call.json())


async def admin_complete(call: Call) -> Any:
    await _empty_body(call)
    return await service.finish_withdrawal(call.node, call.path("withdrawal_id"), complete=True)


async def admin_reject(call: Call) -> Any:
    await _empty_body(call)
    return await service.finish_withdrawal(call.node, call.path("withdrawal_id"), complete=False)


async def admin_asset(call: Call) -> Any:
    return await service.create_asset(call.node, await call.json())


async def admin_market(call: Call) -> Any:
    return await service.create_market(call.node, await call.json())


async def admin_market_status(call: Call) -> Any:
    return await service.set_market_status(call.node, call.path("market_id"), await call.json())


async def admin_users(call: Call) -> Any:
    query = call.query("limit", "after")
    limit = call.int_query(query, "limit", 100, 1, MAX_LIMIT)
    after = call.int_query(query, "after", 0, 0, 10**9 - 1)
    users: list[User] = await call.node.users.page(limit, after)
    return [u.to_wire() for u in users]


async def admin_fees(call: Call) -> Any:
    call.query()
    return await service.balances(call.node, FEES_USER)


async def admin_fee_transfer(call: Call) -> Any:
    """Move collected fees to an account on the platform (a treasury that withdraws)."""
    return await service.transfer(call.node, FEES_USER, await call.json())


async def _empty_body(call: Call) -> None:
    await call.no_body()


TABLE: list[ApiRoute] = [
    # auth
    ApiRoute("POST", "/auth/signup", "public", signup, status=201),
    ApiRoute("POST", "/auth/login", "public", login),
    ApiRoute("POST", "/auth/logout", "user", logout),
    ApiRoute("POST", "/auth/refresh", "user", refresh),
    ApiRoute("GET", "/me", "user", me),
    # public
    ApiRoute("GET", "/time", "public", server_time),
    ApiRoute("GET", "/assets", "public", assets),
    ApiRoute("GET", "/markets", "public", markets),
    ApiRoute("GET", "/markets/{market_id}", "public", market),
    ApiRoute("GET", "/markets/{market_id}/book", "public", book),
    ApiRoute("GET", "/markets/{market_id}/trades", "public", trades),
    ApiRoute("GET", "/markets/{market_id}/ticker", "public", ticker),
    ApiRoute("GET", "/markets/{market_id}/candles", "public", candles),
    # private
    ApiRoute("POST", "/orders", "user", place_order),
    ApiRoute("GET", "/orders", "user", list_orders),
    ApiRoute("DELETE", "/orders", "user", cancel_all),
    ApiRoute("GET", "/orders/{order_id}", "user", get_order),
    ApiRoute("DELETE", "/orders/{order_id}", "user", cancel_order),
    ApiRoute("PATCH", "/orders/{order_id}", "user", amend_order),
    ApiRoute("GET", "/fills", "user", fills),
    ApiRoute("GET", "/balances", "user", balances),
    # wallets
    ApiRoute("GET", "/addresses", "user", addresses),
    ApiRoute("POST", "/transfers", "user", transfer),
    ApiRoute("POST", "/withdrawals", "user", withdraw),
    ApiRoute("GET", "/withdrawals", "user", withdrawals),
    # admin
    ApiRoute("POST", "/admin/deposits", "admin", admin_deposit),
    ApiRoute("POST", "/admin/withdrawals/{withdrawal_id}/complete", "admin", admin_complete),
    ApiRoute("POST", "/admin/withdrawals/{withdrawal_id}/reject", "admin", admin_reject),
    ApiRoute("POST", "/admin/assets", "admin", admin_asset),
    ApiRoute("POST", "/admin/markets", "admin", admin_market),
    ApiRoute("POST", "/admin/markets/{market_id}/status", "admin", admin_market_status),
    ApiRoute("GET", "/admin/users", "admin", admin_users),
    ApiRoute("GET", "/admin/fees", "admin", admin_fees),
    ApiRoute("POST", "/admin/fees/transfers", "admin", admin_fee_transfer),
]
