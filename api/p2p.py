"""P2P trading on the web node: HTTP ``/api/v1/p2p/...`` and ``/api/v1/notifications``
(``routes``, rows of ``api.routing``) and WebSocket ``p2p.*`` methods (``ws_methods``,
for ``api.gateway.METHODS``). One implementation per operation (``op_*``) serves
both: strict schemas, decimal strings -> integer units (asset minimal units; fiat
prices in cents), the ``engine.p2p`` facade, wire format out (docs/protocol.md, P2P).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, StringConstraints
from redis.exceptions import RedisError

from api import history
from api import schemas as S
from api.errors import ApiError
from api.gateway import Method
from api.routing import ApiRoute, Call
from api.service import positive_amount
from engine import accounts, notify
from engine.p2p import P2P
from engine.p2p_rules import (
    MAX_METHOD_CHARS,
    MAX_METHODS,
    MAX_TEXT_CHARS,
    MAX_WINDOW_MIN,
    OfferChanges,
    OfferSpec,
    Role,
    Trade,
    message_to_wire,
    offer_to_wire,
    parse_fiat,
    trade_to_wire,
)
from engine.units import parse_amount

if TYPE_CHECKING:
    from api.connection import Connection
    from api.node import Node

MAX_LIST = 200
_P2P_ID = re.compile(r"^[0-9]{1,20}\Z")

Fiat = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
P2PId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}$")]
PaymentMethod = Annotated[str, StringConstraints(min_length=1, max_length=MAX_METHOD_CHARS)]
Methods = Annotated[list[PaymentMethod], Field(min_length=1, max_length=MAX_METHODS)]
Window = Annotated[int, Field(ge=1, le=MAX_WINDOW_MIN)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]


class NewOffer(S.Strict):
    side: Literal["sell", "buy"]
    asset: S.AssetSymbol
    fiat: Fiat
    price: S.Decimal
    amount: S.Decimal
    min_amount: S.Decimal
    max_amount: S.Decimal
    payment_methods: Methods
    payment_window: Window
    request_id: S.ClientOrderId | None = None


class EditOffer(S.Strict):
    offer_id: P2PId
    status: Literal["OPEN", "PAUSED"] | None = None
    amount: S.Decimal | None = None
    price: S.Decimal | None = None
    min_amount: S.Decimal | None = None
    max_amount: S.Decimal | None = None
    payment_methods: Methods | None = None
    payment_window: Window | None = None
    request_id: S.ClientOrderId | None = None


class OfferRef(S.Strict):
    offer_id: P2PId
    request_id: S.ClientOrderId | None = None


class Take(S.Strict):
    offer_id: P2PId
    amount: S.Decimal
    price: S.Decimal | None = None  # the price the taker agreed to
    request_id: S.ClientOrderId | None = None


class TradeRef(S.Strict):
    trade_id: P2PId
    request_id: S.ClientOrderId | None = None


class Dispute(TradeRef):
    reason: Text


class Resolve(TradeRef):
    resolution: Literal["release", "refund"]


class PostMessage(TradeRef):
    body: Text


class ListOffers(S.Strict):
    asset: S.AssetSymbol | None = None
    side: Literal["sell", "buy"] | None = None
    fiat: Fiat | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_LIST)] = 100


class Limit(S.Strict):
    limit: Annotated[int, Field(ge=1, le=MAX_LIST)] = 100


class NotificationsQuery(S.Strict):
    limit: Annotated[int, Field(ge=1, le=notify.INBOX_CAP)] = 50
    before: P2PId | None = None  # a notification id: the older ones, from history


# -- the desk of this node -----------------------------------------------------------


def desk(node: Node) -> P2P:
    """The node's P2P facade; trades get their expiry job through an arq client that
    shares the node's Redis connections (single Redis; on a cluster the worker's
    sweep expires them)."""
    found: P2P | None = node.cache.get("p2p")
    if found is None:
        found = node.cache["p2p"] = P2P(node.redis, scheduler=_scheduler(node.redis))
    return found


def _scheduler(redis: Any) -> Any:
    import redis.asyncio as aredis
    from arq.connections import ArqRedis

    from workers.p2p_jobs import arq_scheduler

    if not isinstance(redis, aredis.Redis):  # a cluster client: the sweep expires
        return None
    return arq_scheduler(ArqRedis(connection_pool=redis.connection_pool))


def _units(scale: int, text: str | None, what: str) -> int | None:
    if text is None:
        return None
    value = parse_amount(scale, text, what)
    if value <= 0 and what != "amount":
        raise ApiError("INVALID_PARAM", f"{what} must be positive")
    return value


# -- operations (HTTP and WebSocket) ---------------------------------------------------


async def op_create_offer(node: Node, user: str, role: Role, params: Any) -> dict[str, Any]:
    p = S.parse(NewOffer, params)
    d = desk(node)
    scale = await d.scale(p.asset)
    spec = OfferSpec(
        side=p.side,
        asset=p.asset,
        fiat=p.fiat,
        price=parse_fiat(p.price),
        amount=positive_amount(scale, p.amount, "amount"),
        min_amount=positive_amount(scale, p.min_amount, "min_amount"),
        max_amount=positive_amount(scale, p.max_amount, "max_amount"),
        payment_methods=tuple(p.payment_methods),
        payment_window=p.payment_window,
    )
    offer = await d.create_offer(user, spec, request_id=p.request_id)
    return offer_to_wire(offer, scale)


async def op_list_offers(node: Node, user: str, role: Role, params: Any) -> list[dict[str, Any]]:
    p = S.parse(ListOffers, params)
    d = desk(node)
    offers = await d.list_offers(asset=p.asset, side=p.side, fiat=p.fiat, limit=p.limit)
    return [offer_to_wire(o, await d.scale(o.asset)) for o in offers]


async def op_my_offers(node: Node, user: str, role: Role, params: Any) -> list[dict[str, Any]]:
    p = S.parse(Limit, params)
    d = desk(node)
    return [
        offer_to_wire(o, await d.scale(o.asset)) for o in await d.my_offers(user, limit=p.limit)
    ]


async def op_get_offer(node: Node, user: str, role: Role, params: Any) -> dict[str, Any]:
    p = S.parse(OfferRef, params)
    d = desk(node)
    offer = await d.get_offer(p.offer_id)
    return offer_to_wire(offer, await d.scale(offer.asset))


async def op_update_offer(node: Node, user: str, role: Role, params: Any) -> dict[str, Any]:
    p = S.parse(EditOffer, params)
    d = desk(node)
    current = await d.get_offer(p.offer_id)
    if current.owner != user:
        raise ApiError("UNKNOWN_ORDER", "unknown offer")
    scale = await d.scale(current.asset)
    changes = OfferChanges(
        status=p.status,
        amount=_units(scale, p.amount, "amount"),
        price=None if p.price is None else parse_fiat(p.price),
        min_amount=_units(scale, p.min_amount, "min_amount"),
        max_amount=_units(scale, p.max_amount, "max_amount"),
        payment_methods=None if p.payment_methods is None else tuple(p.payment_methods),
        payment_window=p.payment_window,
    )
    offer = await d.update_offer(user, p.offer_id, changes, request_id=p.request_id)
    return offer_to_wire(offer, scale)


async def op_close_offer(node: Node, user: str, role: Role, params: Any) -> dict[str, Any]:
    p = S.parse(OfferRef, params)
    d = desk(node)
    offer = await d.close_offer(user, p.offer_id, request_id=p.request_id)
    return offer_to_wire(offer, await d.scale(offer.asset))


async def op_take(node: Node, user: str, role: Role, params: Any) -> dict[str, Any]:
    p = S.parse(Take, params)
    d = desk(node)
    offer = await d.get_offer(p.offer_id)
    scale = await d.scale(offer.asset)
    amount = positive_amount(scale, p.amount, "amount")
    price = None if p.price is None else parse_fiat(p.price)
    trade = await d.take_offer(user, p.offer_id, amount, price=price, request_id=p.request_id)
    return trade_to_wire(trade, scale)


async def op_my_trades(node: Node, user: str, role: Role, params: Any) -> list[dict[str, Any]]:
    p = S.parse(Limit, params)
    d = desk(node)
    return [
        trade_to_wire(t, await d.scale(t.asset)) for t in await d.my_trades(user, limit=p.limit)
    ]


async def op_get_trade(node: Node, user: str, role: Role, params: Any) -> dict[str, Any]:
    p = S.parse(TradeRef, params)
    d = desk(node)
    trade = await d.get_trade(user, p.trade_id, role=role)
    return trade_to_wire(trade, await d.scale(trade.asset))


async def _move(node: Node, user: str, params: Any, action: str) -> dict[str, Any]:
    d = desk(node)
    p = S.parse(TradeRef, params)
    move = {"paid": d.mark_paid, "release": d.confirm_release, "cancel": d.cancel_trade}
    trade = await move[action](user, p.trade_id, request_id=p.request_id)
    await _buyer_credited(node, trade)
    return trade_to_wire(trade, await d.scale(trade.asset))


async def _buyer_credited(node: Node, trade: Trade) -> None:
    """A release is answered once the settler has credited the buyer (read-your-writes,
    api.catchup): the buyer's next balance read shows the asset."""
    if trade.status != "RELEASED":
        return
    try:
        entry = await accounts.transfer_entry(node.redis, trade.seller, f"p2p:{trade.id}")
    except (RedisError, OSError):
        return  # released all the same: the settler credits the buyer
    if entry is not None:
        await node.catchup.credited(trade.buyer, trade.seller, entry)


async def op_paid(node: Node, user: str, role: Role, params: Any) -> dict[str, Any]:
    return await _move(node, user, params, "paid")


async def op_release(node: Node, user: str, role: Role, params: Any) -> dict[str, Any]:
    return await _move(node, user, params, "release")


async def op_cancel(node: Node, user: str, role: Role, params: Any) -> dict[str, Any]:
    return await _move(node, user, params, "cancel")


async def op_dispute(node: Node, user: str, role: Role, params: Any) -> dict[str, Any]:
    p = S.parse(Dispute, params)
    d = desk(node)
    trade = await d.open_dispute(user, p.trade_id, p.reason, request_id=p.request_id)
    return trade_to_wire(trade, await d.scale(trade.asset))


async def op_resolve(node: Node, user: str, role: Role, params: Any) -> dict[str, Any]:
    if role != "admin":
        raise ApiError("FORBIDDEN", "admin only")
    p = S.parse(Resolve, params)
    d = desk(node)
    trade = await d.resolve_dispute(user, p.trade_id, p.resolution, request_id=p.request_id)
    await _buyer_credited(node, trade)
    return trade_to_wire(trade, await d.scale(trade.asset))


async def op_disputes(node: Node, user: str, role: Role, params: Any) -> list[dict[str, Any]]:
    if role != "admin":
        raise ApiError("FORBIDDEN", "admin only")
    S.parse(S.Empty, params)
    d = desk(node)
    return [trade_to_wire(t, await d.scale(t.asset)) for t in await d.disputes()]


async def op_messages(node: Node, user: str, role: Role, params: Any) -> list[dict[str, Any]]:
    p = S.parse(TradeRef, params)
    return [message_to_wire(m) for m in await desk(node).messages(user, p.trade_id, role=role)]


async def op_post_message(node: Node, user: str, role: Role, params: Any) -> dict[str, Any]:
    p = S.parse(PostMessage, params)
    msg = await desk(node).post_message(
        user, p.trade_id, p.body, role=role, request_id=p.request_id
    )
    return message_to_wire(msg)


async def op_notifications(node: Node, user: str, role: Role, params: Any) -> list[dict[str, Any]]:
    p = S.parse(NotificationsQuery, params)
    if p.before is None:
        return [n.to_wire() for n in await notify.inbox(node.redis, user, p.limit)]
    found = None
    if int(p.before) < 2**63:
        async with node.db.connection() as conn:
            found = await history.notifications_before(conn, user, int(p.before), p.limit)
    if found is None:
        raise ApiError("INVALID_PARAM", "before: not a recorded notification of yours")
    return [{"id": str(n.id), "kind": n.kind, "message": n.message, "ref": n.ref or "",
             "ts": n.ts} for n in found]  # fmt: skip


# -- HTTP ------------------------------------------------------------------------------

Op = Any  # an op_* coroutine function


def _role(call: Call) -> Role:
    return "admin" if call.principal is not None and call.principal.role == "admin" else "user"


def _path_id(call: Call, name: str, what: str) -> str:
    value = call.path(name)
    if not _P2P_ID.match(value):
        raise ApiError("UNKNOWN_ORDER", f"unknown {what}")
    return value


def _query(call: Call, *allowed: str) -> dict[str, Any]:
    query: dict[str, Any] = call.query(*allowed)
    if "limit" in query:
        query["limit"] = call.int_query(query, "limit", 100, 1, notify.INBOX_CAP)
    return query


def http(op: Op, source: str = "body", path: tuple[str, str] | None = None) -> Any:
    """An ``api.routing`` handler: params from the JSON body or the query string,
    plus the id in the path (``(path param, what)``)."""

    async def handler(call: Call) -> Any:
        if source == "body":
            params = await call.json()
            call.query()
        else:
            params = _query(call, *(name for name in source.split(",") if name))
        if path is not None:
            params = {**params, path[0]: _path_id(call, *path)}
        user = call.principal.user_id if call.principal is not None else ""
        return await op(call.node, user, _role(call), params)

    return handler


OFFER = ("offer_id", "offer")
TRADE = ("trade_id", "trade")

routes: list[ApiRoute] = [
    ApiRoute("POST", "/p2p/offers", "user", http(op_create_offer)),
    ApiRoute("GET", "/p2p/offers", "public", http(op_list_offers, "asset,side,fiat,limit")),
    ApiRoute("GET", "/p2p/offers/mine", "user", http(op_my_offers, "limit")),
    ApiRoute("GET", "/p2p/offers/{offer_id}", "public", http(op_get_offer, "", OFFER)),
    ApiRoute("PATCH", "/p2p/offers/{offer_id}", "user", http(op_update_offer, path=OFFER)),
    ApiRoute("POST", "/p2p/offers/{offer_id}/close", "user", http(op_close_offer, path=OFFER)),
    ApiRoute("POST", "/p2p/offers/{offer_id}/take", "user", http(op_take, path=OFFER)),
    ApiRoute("GET", "/p2p/trades", "user", http(op_my_trades, "limit")),
    ApiRoute("GET", "/p2p/trades/{trade_id}", "user", http(op_get_trade, "", TRADE)),
    ApiRoute("POST", "/p2p/trades/{trade_id}/paid", "user", http(op_paid, path=TRADE)),
    ApiRoute("POST", "/p2p/trades/{trade_id}/release", "user", http(op_release, path=TRADE)),
    ApiRoute("POST", "/p2p/trades/{trade_id}/cancel", "user", http(op_cancel, path=TRADE)),
    ApiRoute("POST", "/p2p/trades/{trade_id}/dispute", "user", http(op_dispute, path=TRADE)),
    ApiRoute("GET", "/p2p/trades/{trade_id}/messages", "user", http(op_messages, "", TRADE)),
    ApiRoute("POST", "/p2p/trades/{trade_id}/messages", "user", http(op_post_message, path=TRADE)),
    ApiRoute("GET", "/p2p/admin/disputes", "admin", http(op_disputes, "")),
    ApiRoute("POST", "/p2p/admin/trades/{trade_id}/resolve", "admin", http(op_resolve, path=TRADE)),
    ApiRoute("GET", "/notifications", "user", http(op_notifications, "limit,before")),
]


# -- WebSocket ---------------------------------------------------------------------------


def ws(op: Op) -> Any:
    """An ``api.gateway`` method handler ``(node, conn, params)``."""

    async def handler(node: Node, conn: Connection, params: Any) -> Any:
        assert conn.principal is not None
        role: Role = "admin" if conn.principal.role == "admin" else "user"
        return await op(node, conn.principal.user_id, role, params)

    return handler


ws_methods: dict[str, Method] = {
    m.name: m
    for m in (
        Method("p2p.offer.create", "user", ws(op_create_offer)),
        Method("p2p.offers.list", "user", ws(op_list_offers)),
        Method("p2p.offers.mine", "user", ws(op_my_offers)),
        Method("p2p.offer.get", "user", ws(op_get_offer)),
        Method("p2p.offer.update", "user", ws(op_update_offer)),
        Method("p2p.offer.close", "user", ws(op_close_offer)),
        Method("p2p.offer.take", "user", ws(op_take)),
        Method("p2p.trades.mine", "user", ws(op_my_trades)),
        Method("p2p.trade.get", "user", ws(op_get_trade)),
        Method("p2p.trade.paid", "user", ws(op_paid)),
        Method("p2p.trade.release", "user", ws(op_release)),
        Method("p2p.trade.cancel", "user", ws(op_cancel)),
        Method("p2p.trade.dispute", "user", ws(op_dispute)),
        Method("p2p.trade.resolve", "user", ws(op_resolve)),
        Method("p2p.disputes.list", "user", ws(op_disputes)),
        Method("p2p.messages.get", "user", ws(op_messages)),
        Method("p2p.message.post", "user", ws(op_post_message)),
        Method("notifications.get", "user", ws(op_notifications)),
    )
}
