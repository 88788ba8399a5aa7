"""P2P trading facade (DESIGN.md §7): offers, trades with escrow, disputes, messages.

No caller sees a key or a Lua argument order. Amounts are integers (asset minimal
units; fiat prices and amounts in cents); refusals raise ``EngineError`` with
PROTOCOL.md codes (``UNKNOWN_ORDER`` for an unknown offer or trade, or one the
caller may not see). Every state change is ONE call of ``lua/30_p2p.lua`` on one account
shard (a trade and its escrow live in the seller's shard), atomic and idempotent;
global indexes in ``{g}`` are written before (they may only over-report) and
cleaned after, or by :meth:`P2P.sweep` (key names: ``engine.p2p_keys``).

Taking a BUY offer spans two shards: reserve on the offer (buyer's shard), then open
the trade with the seller's escrow (seller's shard). A refused open tombstones the
trade id and returns the reservation; a crash in between is repaired by ``sweep``.
Both parties are notified (``engine.notify``) after every transition, once per
transition even when a request or a job is retried. A call that may move the shard
owner's balance (an offer's escrow, a trade opened on a buy offer, a trade ending)
is followed by the owner's private ``balances`` push of that asset (best effort; the
buyer's credit of a release is pushed by the settler that applies it).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from redis.exceptions import ResponseError

from engine import accounts, notify
from engine.ids import new_order_id
from engine.p2p_keys import (
    DISPUTES,
    EXPIRY,
    OFFER_OWNER,
    OFFERS,
    RESERVATIONS,
    TRADE_PARTIES,
    offer_key,
    prefix,
    shard,
    trade_key,
)
from engine.p2p_rules import (
    FINAL,
    SYSTEM,
    Message,
    Offer,
    OfferChanges,
    OfferSide,
    OfferSpec,
    Role,
    Trade,
    check_units,
    clean_text,
    encode_methods,
    fiat_amount,
    message_from,
    notices,
    offer_from,
    trade_from,
)
from engine.pubsub import publish
from engine.settlement import balance_push
from engine.types import Balance, EngineError

log = logging.getLogger("hftx.p2p")

RESERVE_GRACE_MS = 30_000  # a reservation without its trade this long is aborted
INDEX_GRACE_MS = 60_000
MAX_LIST = 200

ExpiryScheduler = Callable[[str, int], Awaitable[None]]  # (trade id, deadline ms)
ExpireOutcome = Literal["expired", "replay", "not_due", "not_pending", "unknown"]
Resolution = Literal["release", "refund"]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.isdigit() or len(value) > 20:
        raise EngineError("UNKNOWN_ORDER", f"unknown {what}")
    return value


def _rid(request_id: str | None) -> str:
    if request_id is None:
        return ""
    accounts._check_id(request_id, "request_id")
    return request_id


_CODE_RE = re.compile(r"^([A-Z][A-Z0-9_]+) (.*)$", re.S)


def _engine_error(exc: ResponseError) -> EngineError:
    """A Lua ``fail(CODE, msg)`` reply as an EngineError (codes may hold digits)."""
    m = _CODE_RE.match(str(exc))
    return EngineError(m.group(1), m.group(2)) if m else EngineError("INTERNAL", str(exc))


def _raise(reply: Any) -> Any:
    if isinstance(reply, ResponseError):
        raise _engine_error(reply)
    if isinstance(reply, Exception):
        raise reply
    return reply


def _balance_of(raw: dict[Any, Any], asset: str) -> Balance:
    """One asset of a ``{u:U}:bal`` hash as read by HGETALL (pure)."""
    get = {_text(k): int(v) for k, v in raw.items()}.get
    return Balance(asset, get(f"{asset}:a", 0), get(f"{asset}:h", 0), get(f"{asset}:e", 0))


@dataclass(frozen=True, slots=True)
class ExpireResult:
    outcome: ExpireOutcome
    trade: Trade | None


@dataclass(slots=True)
class SweepResult:
    expired: list[str] = field(default_factory=list)
    reservations_settled: int = 0
    aborted: list[str] = field(default_factory=list)
    offers_pruned: int = 0


class P2P:
    """One per process; safe to share between tasks.

    ``scheduler`` is called with ``(trade id, payment deadline)`` after a trade opens
    (the arq expiry job, ``workers.p2p_jobs``); ``sweep`` is the safety net.
    """

    def __init__(
        self,
        redis: Any,
        *,
        scheduler: ExpiryScheduler | None = None,
        notifications: bool = True,
        balance_pushes: bool = True,
    ) -> None:
        self.redis = redis
        self.scheduler = scheduler
        self.notifications = notifications
        self.balance_pushes = balance_pushes
        self._scales: dict[str, int] = {}

    async def scale(self, asset: str) -> int:
        if asset not in self._scales:
            self._scales[asset] = await accounts.asset_scale(self.redis, asset)
        return self._scales[asset]

    async def _push_balance(self, user: str, asset: str, bal: Any = None) -> None:
        """Publish ``user``'s ``balances`` push of ``asset`` (never raises: the
        balance itself is already right, a lost push only delays the client).
        ``bal``: the user's balances hash as read right after the call, in its
        pipeline (saves a round trip); None reads it now."""
        if not self.balance_pushes:
            return
        try:
            if isinstance(bal, dict):
                b = _balance_of(bal, asset)
            else:
                b = await accounts.balance(self.redis, user, asset)
            push = balance_push(b, await self.scale(asset))
            await publish(self.redis, notify.channel(user), orjson.dumps(push))
        except Exception:
            log.warning("balances push to %s failed", user, exc_info=True)

    async def _fcall_bal(self, fn: str, keys: list[str], *args: Any) -> tuple[Any, Any]:
        """(reply, the shard's balances hash right after the call), one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.fcall(fn, len(keys), *keys, *args)
        pipe.hgetall(keys[0])
        reply, bal = await pipe.execute(raise_on_error=False)
        return _raise(reply), bal

    async def _fcall(self, fn: str, keys: list[str], *args: Any) -> Any:
        try:
            return await self.redis.fcall(fn, len(keys), *keys, *args)
        except ResponseError as exc:
            raise _engine_error(exc) from None

    # -- offers ----------------------------------------------------------------------

    async def create_offer(
        self, user: str, spec: OfferSpec, *, request_id: str | None = None, now: int | None = None
    ) -> Offer:
        """Post an offer; a sell offer escrows ``spec.amount`` from available."""
        spec = spec.checked()
        await self.scale(spec.asset)
        offer_id, now = new_order_id(), now or now_ms()
        keys = [*shard(user), offer_key(user, offer_id)]
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(OFFER_OWNER, offer_id, user)
        pipe.zadd(OFFERS, {f"{spec.side}|{spec.asset}|{spec.fiat}|{user}|{offer_id}": now})
        pipe.sadd(accounts.ACCOUNTS_KEY, user)
        pipe.fcall("p2p_offer_create", len(keys), *keys, offer_id, spec.side, spec.asset,
                   spec.fiat, spec.price, spec.min_amount, spec.max_amount, spec.amount,
                   encode_methods(spec.payment_methods), spec.payment_window, now,
                   _rid(request_id))  # fmt: skip
        pipe.hgetall(keys[0])
        *_, reply, bal = await pipe.execute(raise_on_error=False)
        offer = offer_from(_raise(reply)[1])
        if offer.side == "sell":
            await self._push_balance(user, offer.asset, bal)
        return offer

    async def update_offer(
        self,
        user: str,
        offer_id: str,
        changes: OfferChanges,
        *,
        request_id: str | None = None,
        now: int | None = None,
    ) -> Offer:
        """Pause/resume or edit one of ``user``'s offers (amount = new amount left)."""
        _check_id(offer_id, "offer")
        keys = [*shard(user), offer_key(user, offer_id)]
        reply, bal = await self._fcall_bal("p2p_offer_update", keys, offer_id, *changes.argv(),
                                           now or now_ms(), _rid(request_id))  # fmt: skip
        offer = offer_from(reply[1])
        if offer.side == "sell" and changes.amount is not None:
            await self._push_balance(user, offer.asset, bal)
        return offer

    async def close_offer(
        self, user: str, offer_id: str, *, request_id: str | None = None, now: int | None = None
    ) -> Offer:
        """Close one of ``user``'s offers; a sell offer's remaining escrow is released."""
        _check_id(offer_id, "offer")
        keys = [*shard(user), offer_key(user, offer_id)]
        reply, bal = await self._fcall_bal("p2p_offer_close", keys, offer_id, now or now_ms(),
                                           _rid(request_id))  # fmt: skip
        offer = offer_from(reply[1])
        await self.redis.zrem(OFFERS, self._listing(offer))
        if offer.side == "sell":
            await self._push_balance(user, offer.asset, bal)
        return offer

    @staticmethod
    def _listing(o: Offer) -> str:
        return f"{o.side}|{o.asset}|{o.fiat}|{o.owner}|{o.id}"

    async def get_offer(self, offer_id: str) -> Offer:
        _check_id(offer_id, "offer")
        owner = await self.redis.hget(OFFER_OWNER, offer_id)
        raw = await self.redis.hgetall(offer_key(_text(owner), offer_id)) if owner else None
        if not raw:
            raise EngineError("UNKNOWN_ORDER", "unknown offer")
        return offer_from({_text(k): _text(v) for k, v in raw.items()})

    async def _offers(self, refs: list[tuple[str, str]]) -> list[Offer]:
        """Offers by ``(owner, offer id)``, skipping missing ones."""
        if not refs:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for owner, oid in refs:
            pipe.hgetall(offer_key(owner, oid))
        out = []
        for raw in await pipe.execute():
            if raw:
                out.append(offer_from({_text(k): _text(v) for k, v in raw.items()}))
        return out

    async def list_offers(
        self,
        *,
        asset: str | None = None,
        side: OfferSide | None = None,
        fiat: str | None = None,
        limit: int = 100,
    ) -> list[Offer]:
        """Takeable offers (OPEN with at least their minimum left), best price first
        (sell offers cheapest first, buy offers highest first), then oldest first."""
        refs = []
        for member in await self.redis.zrange(OFFERS, 0, -1):
            s, a, f, owner, oid = _text(member).split("|")
            if (side in (None, s)) and (asset in (None, a)) and (fiat in (None, f)):
                refs.append((owner, oid))
        offers = [o for o in await self._offers(refs) if o.takeable]
        offers.sort(key=lambda o: (o.side, o.price if o.side == "sell" else -o.price, o.id))
        return offers[: max(1, min(limit, MAX_LIST))]

    async def my_offers(self, user: str, *, limit: int = 100) -> list[Offer]:
        """``user``'s offers, newest first (closed ones included)."""
        ids = await self.redis.zrevrange(
            prefix(user) + "p2p:ol", 0, max(1, min(limit, MAX_LIST)) - 1
        )
        return await self._offers([(user, _text(i)) for i in ids])

    # -- taking an offer ---------------------------------------------------------------

    async def take_offer(
        self,
        user: str,
        offer_id: str,
        amount: int,
        *,
        price: int | None = None,
        request_id: str | None = None,
        now: int | None = None,
    ) -> Trade:
        """Open a PENDING trade for ``amount`` of an offer. ``price`` is the price the
        taker agreed to (refused if the owner changed it since); default: the current."""
        check_units(amount, "amount")
        offer = await self.get_offer(offer_id)
        price = offer.price if price is None else check_units(price, "price")
        fiat = fiat_amount(price, amount, await self.scale(offer.asset))
        rid, now = _rid(request_id), now or now_ms()
        accounts.account_keys(user)
        if offer.side == "sell":
            trade = await self._take_sell(user, offer, amount, price, fiat, rid, now)
        else:
            trade = await self._take_buy(user, offer, amount, price, fiat, rid, now)
        if trade.status == "PENDING":
            await self.redis.zadd(EXPIRY, {f"{trade.seller}|{trade.id}": trade.expires_ts})
            try:
                if self.scheduler is not None:
                    await self.scheduler(trade.id, trade.expires_ts)
            except Exception:  # the sweep expires it anyway
                log.exception("could not schedule the expiry of P2P trade %s", trade.id)
        await self._notify(trade)
        return trade

    async def _take_sell(
        self, buyer: str, offer: Offer, amount: int, price: int, fiat: int, rid: str, now: int
    ) -> Trade:
        seller, tid = offer.owner, new_order_id()
        keys = [*shard(seller), offer_key(seller, offer.id), trade_key(seller, tid)]
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(TRADE_PARTIES, tid, f"{seller}|{buyer}")
        pipe.zadd(EXPIRY, {f"{seller}|{tid}": now + offer.payment_window * 60_000})
        pipe.zadd(prefix(buyer) + "p2p:tl", {f"{tid}|{seller}": now})
        pipe.sadd(accounts.ACCOUNTS_KEY, seller, buyer)
        pipe.fcall("p2p_take", len(keys), *keys, tid, buyer, amount, price, fiat, now, rid)
        *_, reply = await pipe.execute(raise_on_error=False)
        try:
            trade = trade_from(_raise(reply)[1])
        except EngineError:
            await self._forget(seller, buyer, tid)
            raise
        if trade.id != tid:  # replayed request: the first trade answers
            await self._forget(seller, buyer, tid)
        return trade

    async def _forget(self, seller: str, buyer: str, tid: str) -> None:
        """Drop the index entries written for a trade id that was not used."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hdel(TRADE_PARTIES, tid)
        pipe.zrem(EXPIRY, f"{seller}|{tid}")
        pipe.zrem(prefix(buyer) + "p2p:tl", f"{tid}|{seller}")
        await pipe.execute()

    async def _take_buy(
        self, seller: str, offer: Offer, amount: int, price: int, fiat: int, rid: str, now: int
    ) -> Trade:
        buyer, tid = offer.owner, new_order_id()
        member = f"{buyer}|{offer.id}|{tid}|{seller}"
        okeys = [*shard(buyer), offer_key(buyer, offer.id)]
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(TRADE_PARTIES, tid, f"{seller}|{buyer}")
        pipe.zadd(RESERVATIONS, {member: now})
        pipe.sadd(accounts.ACCOUNTS_KEY, seller, buyer)
        pipe.fcall("p2p_reserve", len(okeys), *okeys, tid, seller, amount, price, now, rid)
        *_, reply = await pipe.execute(raise_on_error=False)
        try:
            _, reserved, flat = _raise(reply)
        except EngineError:
            await self.redis.zrem(RESERVATIONS, member)
            await self.redis.hdel(TRADE_PARTIES, tid)
            raise
        reserved = _text(reserved)
        if reserved != tid:  # replayed request
            await self.redis.zrem(RESERVATIONS, member)
            await self.redis.hdel(TRADE_PARTIES, tid)
            tid = reserved
        terms = offer_from(flat)
        tkeys = [*shard(seller), trade_key(seller, tid)]
        try:
            reply, bal = await self._fcall_bal(
                "p2p_open", tkeys, tid, offer.id, buyer, terms.asset, terms.fiat, price, amount,
                fiat, encode_methods(terms.payment_methods), terms.payment_window, now,
            )  # fmt: skip
        except EngineError as exc:
            await self._abort(seller, buyer, offer.id, tid, exc.code, exc.message)
            raise
        await self._push_balance(seller, terms.asset, bal)  # escrowed from the seller's free
        return trade_from(reply[1])

    async def _abort(
        self, seller: str, buyer: str, offer_id: str, tid: str, code: str, message: str
    ) -> bool:
        """Tombstone a reserved trade id that has no trade and return its reservation;
        False when the trade exists after all."""
        status = _text(
            await self._fcall("p2p_abort", [trade_key(seller, tid)], tid, code, message, now_ms())
        )
        if status != "ABORTED":
            return False
        await self._unreserve(buyer, offer_id, tid, seller, "return")
        return True

    async def _unreserve(
        self, buyer: str, offer_id: str, tid: str, seller: str, outcome: str
    ) -> None:
        keys = [*shard(buyer), offer_key(buyer, offer_id)]
        await self._fcall("p2p_unreserve", keys, tid, outcome, now_ms())
        await self.redis.zrem(RESERVATIONS, f"{buyer}|{offer_id}|{tid}|{seller}")

    # -- trade transitions ---------------------------------------------------------------

    async def _parties(self, trade_id: str) -> tuple[str, str]:
        _check_id(trade_id, "trade")
        raw = await self.redis.hget(TRADE_PARTIES, trade_id)
        if raw is None:
            raise EngineError("UNKNOWN_ORDER", "unknown trade")
        seller, _, buyer = _text(raw).partition("|")
        return seller, buyer

    async def _act(
        self,
        action: str,
        actor: str,
        role: str,
        trade_id: str,
        *,
        request_id: str | None = None,
        reason: str = "",
        now: int | None = None,
    ) -> tuple[str, Trade]:
        seller, buyer = await self._parties(trade_id)
        keys = [*shard(seller), trade_key(seller, trade_id)]
        now = now or now_ms()  # one clock: the dispute index scores the dispute's ts
        pipe = self.redis.pipeline(transaction=False)
        if action in ("release", "resolve_release"):
            pipe.zincrby(accounts.OUTBOX_KEY, 1, seller)  # signal first: may over-report
            pipe.sadd(accounts.ACCOUNTS_KEY, buyer)
        if action == "dispute":
            pipe.zadd(DISPUTES, {f"{seller}|{trade_id}": now})
        at = len(pipe)
        pipe.fcall("p2p_act", len(keys), *keys, action, actor, role, now, _rid(request_id),
                   reason)  # fmt: skip
        pipe.hgetall(keys[0])  # the seller's balances after the call (for the push)
        if action in ("release", "resolve_release"):
            accounts.wake_outboxes(pipe)
        replies = await pipe.execute(raise_on_error=False)
        reply, bal = replies[at], replies[at + 1]
        kind, flat = _raise(reply)
        trade = trade_from(flat)
        if _text(kind) != "not_due":
            await self._after(trade, bal)
        return _text(kind), trade

    async def _after(self, trade: Trade, bal: Any = None) -> None:
        """Follow-ups of a transition (idempotent, repeated on replays): the seller's
        balances push, buy-offer reservation, index cleanup, notifications."""
        if trade.status in FINAL:
            await self._push_balance(trade.seller, trade.asset, bal)  # escrow left or came back
            if trade.offer_side == "buy":
                outcome = "fill" if trade.status == "RELEASED" else "return"
                await self._unreserve(trade.buyer, trade.offer_id, trade.id, trade.seller, outcome)
            await self.redis.zrem(EXPIRY, f"{trade.seller}|{trade.id}")
        if trade.status != "DISPUTED":
            await self.redis.zrem(DISPUTES, f"{trade.seller}|{trade.id}")
        if trade.status == "PAID":
            await self.redis.zrem(EXPIRY, f"{trade.seller}|{trade.id}")
        await self._notify(trade)

    async def _notify(self, trade: Trade) -> None:
        if not self.notifications:
            return
        scale = await self.scale(trade.asset)
        for user, kind, message in notices(trade, scale):
            await notify.notify(
                self.redis, user, kind, message, trade.id,
                dedup=f"p2p:{trade.id}:{trade.last_action}",
            )  # fmt: skip

    async def mark_paid(
        self, user: str, trade_id: str, *, request_id: str | None = None, now: int | None = None
    ) -> Trade:
        """The buyer says the fiat was sent (before the payment deadline)."""
        return (await self._act("paid", user, "user", trade_id, request_id=request_id, now=now))[1]

    async def confirm_release(
        self, user: str, trade_id: str, *, request_id: str | None = None, now: int | None = None
    ) -> Trade:
        """The seller confirms receipt: escrow -> buyer (credited by the settler)."""
        return (await self._act("release", user, "user", trade_id, request_id=request_id, now=now))[
            1
        ]

    async def cancel_trade(
        self, user: str, trade_id: str, *, request_id: str | None = None, now: int | None = None
    ) -> Trade:
        """The buyer cancels before paying: the amount returns to the offer (or seller)."""
        return (await self._act("cancel", user, "user", trade_id, request_id=request_id, now=now))[
            1
        ]

    async def open_dispute(
        self,
        user: str,
        trade_id: str,
        reason: str,
        *,
        request_id: str | None = None,
        now: int | None = None,
    ) -> Trade:
        """Either party, after PAID: an admin will resolve."""
        reason = clean_text(reason, "reason")
        return (
            await self._act(
                "dispute", user, "user", trade_id, request_id=request_id, reason=reason, now=now
            )
        )[1]

    async def resolve_dispute(
        self,
        admin: str,
        trade_id: str,
        resolution: Resolution,
        *,
        request_id: str | None = None,
        now: int | None = None,
    ) -> Trade:
        """An admin (not a party) releases to the buyer or refunds the seller."""
        if resolution not in ("release", "refund"):
            raise EngineError("INVALID_PARAM", "resolution must be release or refund")
        action = f"resolve_{resolution}"
        return (await self._act(action, admin, "admin", trade_id, request_id=request_id, now=now))[
            1
        ]

    async def expire_trade(self, trade_id: str, *, now: int | None = None) -> ExpireResult:
        """Expire a PENDING trade whose payment deadline has passed (the arq job and the
        sweep call this; any number of times, concurrently too: it acts once)."""
        try:
            kind, trade = await self._act("expire", SYSTEM, "system", trade_id, now=now)
        except EngineError as exc:
            if exc.code == "UNKNOWN_ORDER":
                return ExpireResult("unknown", None)
            if exc.code != "INVALID_PARAM":
                raise
            trade = await self.get_trade(SYSTEM, trade_id, role="admin")
            await self._after(trade)
            return ExpireResult("not_pending", trade)
        outcome: ExpireOutcome = "expired" if kind == "new" else kind  # type: ignore[assignment]
        return ExpireResult(outcome, trade)

    # -- reading ---------------------------------------------------------------------------

    async def _read_trade(self, seller: str, trade_id: str) -> Trade | None:
        raw = await self.redis.hgetall(trade_key(seller, trade_id))
        rec = {_text(k): _text(v) for k, v in raw.items()}
        if not rec or rec.get("status") == "ABORTED":
            return None
        return trade_from(rec)

    async def get_trade(self, user: str, trade_id: str, *, role: Role = "user") -> Trade:
        """The trade if ``user`` is a party (or an admin), else UNKNOWN_ORDER."""
        seller, _ = await self._parties(trade_id)
        trade = await self._read_trade(seller, trade_id)
        if trade is None or trade.party(user, role) is None:
            raise EngineError("UNKNOWN_ORDER", "unknown trade")
        return trade

    async def _trades(self, refs: list[tuple[str, str]]) -> list[Trade]:
        """Trades by ``(seller, trade id)``, skipping missing ones."""
        if not refs:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for seller, tid in refs:
            pipe.hgetall(trade_key(seller, tid))
        out = []
        for raw in await pipe.execute():
            rec = {_text(k): _text(v) for k, v in raw.items()}
            if rec and rec.get("status") != "ABORTED":
                out.append(trade_from(rec))
        return out

    async def my_trades(self, user: str, *, limit: int = 100) -> list[Trade]:
        """``user``'s trades as buyer or seller, newest first."""
        members = await self.redis.zrevrange(
            prefix(user) + "p2p:tl", 0, max(1, min(limit, MAX_LIST)) - 1
        )
        refs = [tuple(_text(m).split("|")[::-1]) for m in members]
        trades = await self._trades(refs)  # type: ignore[arg-type]
        return [t for t in trades if user in (t.buyer, t.seller)]

    async def disputes(self) -> list[Trade]:
        """Trades waiting for an admin, oldest dispute first."""
        members = await self.redis.zrange(DISPUTES, 0, -1)
        refs = [tuple(_text(m).split("|")) for m in members]
        trades = await self._trades(refs)  # type: ignore[arg-type]
        return [t for t in trades if t.status == "DISPUTED"]

    # -- messages --------------------------------------------------------------------------

    async def post_message(
        self,
        user: str,
        trade_id: str,
        body: str,
        *,
        role: Role = "user",
        request_id: str | None = None,
        now: int | None = None,
    ) -> Message:
        """Add a short text to the trade's thread (parties; admins in a dispute)."""
        body = clean_text(body, "message")
        seller, _ = await self._parties(trade_id)
        p = prefix(seller)
        keys = [trade_key(seller, trade_id), f"{p}p2p:m:{trade_id}", p + "ev"]
        _, raw = await self._fcall("p2p_msg_post", keys, user, role, body, now or now_ms(),
                                      _rid(request_id))  # fmt: skip
        msg = message_from(raw)
        if self.notifications:
            trade = await self._read_trade(seller, trade_id)
            assert trade is not None
            for other in {trade.buyer, trade.seller} - {user}:
                await notify.notify(
                    self.redis, other, "p2p.message", f"Trade {trade_id}: {msg.body[:200]}",
                    trade_id, dedup=f"p2p:{trade_id}:msg:{msg.n}",
                )  # fmt: skip
        return msg

    async def messages(self, user: str, trade_id: str, *, role: Role = "user") -> list[Message]:
        """The trade's thread, oldest first: for its parties, and for admins once the
        trade was disputed."""
        trade = await self.get_trade(user, trade_id, role=role)
        if trade.party(user, role) == "admin" and not trade.dispute_ts:
            raise EngineError("FORBIDDEN", "admins may read the thread of a disputed trade only")
        rows = await self.redis.lrange(f"{prefix(trade.seller)}p2p:m:{trade_id}", 0, -1)
        return [message_from(r) for r in rows]

    # -- repair ------------------------------------------------------------------------------

    async def sweep(self, *, now: int | None = None) -> SweepResult:
        """Safety net (arq cron): expire due PENDING trades, settle buy-offer
        reservations whose trade ended or never opened, prune the offer index."""
        now = now or now_ms()
        result = SweepResult()
        for member in await self.redis.zrangebyscore(EXPIRY, "-inf", now):
            seller, _, tid = _text(member).partition("|")
            trade = await self._read_trade(seller, tid)
            if trade is not None and trade.status == "PENDING":
                if (await self.expire_trade(tid, now=now)).outcome == "expired":
                    result.expired.append(tid)
            else:
                await self.redis.zrem(EXPIRY, member)
        for member in await self.redis.zrangebyscore(RESERVATIONS, "-inf", now - RESERVE_GRACE_MS):
            buyer, offer_id, tid, seller = _text(member).split("|")
            trade = await self._read_trade(seller, tid)
            if trade is None:
                if await self._abort(seller, buyer, offer_id, tid, "INVALID_PARAM", "take aborted"):
                    result.aborted.append(tid)
                    result.reservations_settled += 1
            elif trade.status in FINAL:
                outcome = "fill" if trade.status == "RELEASED" else "return"
                await self._unreserve(buyer, offer_id, tid, seller, outcome)
                result.reservations_settled += 1
        result.offers_pruned = await self._prune_offers(now)
        return result

    async def _prune_offers(self, now: int) -> int:
        rows = await self.redis.zrangebyscore(OFFERS, "-inf", now - INDEX_GRACE_MS)
        if not rows:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for member in rows:
            _, _, _, owner, oid = _text(member).split("|")
            pipe.hget(offer_key(owner, oid), "status")
        statuses = await pipe.execute()
        stale = [
            m for m, s in zip(rows, statuses, strict=True) if s is None or _text(s) == "CLOSED"
        ]
        if stale:
            await self.redis.zrem(OFFERS, *stale)
        return len(stale)
