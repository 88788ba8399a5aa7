"""P2P trade lifecycle after it opened: paid, release, cancel, expiry, disputes and
the trade's message thread.

Every transition is one ``p2p_act`` call in the seller's shard (``p2p_rules.RULES``
says who may do what in which status); its follow-ups (``_after``: the buy offer's
reservation, index cleanup, notices) are idempotent and repeated when a request or a
job is retried; the seller's balances push goes out only from the call that moved
the balance (a retry, or the expiry job of a trade that ended, pushes nothing again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine import accounts, notify
from engine.p2p_core import Moved, _limit, _raise, _rid, _text, now_ms
from engine.p2p_keys import DISPUTES, EXPIRY, prefix, shard, trade_key
from engine.p2p_rules import (
    FINAL,
    SYSTEM,
    Message,
    Role,
    Trade,
    clean_text,
    message_from,
    trade_from,
)
from engine.p2p_take import Taking
from engine.types import EngineError

ExpireOutcome = Literal["expired", "replay", "not_due", "not_pending", "unknown"]
Resolution = Literal["release", "refund"]


@dataclass(frozen=True, slots=True)
class ExpireResult:
    outcome: ExpireOutcome
    trade: Trade | None


class Trades(Taking):
    # -- transitions -----------------------------------------------------------------

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
        pipe.hgetall(keys[0])  # the seller's balances before and after the call (the push)
        at = len(pipe)
        pipe.fcall("p2p_act", len(keys), *keys, action, actor, role, now, _rid(request_id),
                   reason)  # fmt: skip
        pipe.hgetall(keys[0])
        if action in ("release", "resolve_release"):
            accounts.wake_outboxes(pipe)
        replies = await pipe.execute(raise_on_error=False)
        reply, bal = replies[at], Moved(replies[at - 1], replies[at + 1])
        kind, flat = _raise(reply)
        trade = trade_from(flat)
        if _text(kind) != "not_due":
            await self._after(trade, bal)
        return _text(kind), trade

    async def _after(self, trade: Trade, bal: Moved | None = None) -> None:
        """Follow-ups of a transition (idempotent, repeated on replays): the seller's
        balances push if this call moved it (``bal``; the buyer's credit of a release
        is the settler's push), buy-offer reservation, index cleanup, notifications."""
        if trade.status in FINAL:
            if bal is not None:  # escrow left or came back
                await self._push_balance(trade.seller, trade.asset, bal)
            if trade.offer_side == "buy":
                outcome = "fill" if trade.status == "RELEASED" else "return"
                await self._unreserve(trade.buyer, trade.offer_id, trade.id, trade.seller, outcome)
            await self.redis.zrem(EXPIRY, f"{trade.seller}|{trade.id}")
        if trade.status != "DISPUTED":
            await self.redis.zrem(DISPUTES, f"{trade.seller}|{trade.id}")
        if trade.status == "PAID":
            await self.redis.zrem(EXPIRY, f"{trade.seller}|{trade.id}")
        await self._notify(trade)

    async def mark_paid(
        self, user: str, trade_id: str, *, request_id: str | None = None, now: int | None = None
    ) -> Trade:
        """The buyer says the fiat was sent (before the payment deadline)."""
        _, trade = await self._act("paid", user, "user", trade_id, request_id=request_id, now=now)
        return trade

    async def confirm_release(
        self, user: str, trade_id: str, *, request_id: str | None = None, now: int | None = None
    ) -> Trade:
        """The seller confirms receipt: escrow -> buyer (credited by the settler)."""
        _, trade = await self._act(
            "release", user, "user", trade_id, request_id=request_id, now=now
        )
        return trade

    async def cancel_trade(
        self, user: str, trade_id: str, *, request_id: str | None = None, now: int | None = None
    ) -> Trade:
        """The buyer cancels before paying: the amount returns to the offer (or seller)."""
        _, trade = await self._act("cancel", user, "user", trade_id, request_id=request_id, now=now)
        return trade

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
        _, trade = await self._act(
            "dispute", user, "user", trade_id, request_id=request_id, reason=reason, now=now
        )
        return trade

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
        _, trade = await self._act(action, admin, "admin", trade_id, request_id=request_id, now=now)
        return trade

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

    # -- reading ---------------------------------------------------------------------

    async def get_trade(self, user: str, trade_id: str, *, role: Role = "user") -> Trade:
        """The trade if ``user`` is a party (or an admin), else UNKNOWN_ORDER."""
        seller, _ = await self._parties(trade_id)
        trade = await self._read_trade(seller, trade_id)
        if trade is None or trade.party(user, role) is None:
            raise EngineError("UNKNOWN_ORDER", "unknown trade")
        return trade

    async def my_trades(self, user: str, *, limit: int = 100) -> list[Trade]:
        """``user``'s trades as buyer or seller, newest first."""
        members = await self.redis.zrevrange(prefix(user) + "p2p:tl", 0, _limit(limit) - 1)
        refs = []
        for m in members:
            tid, seller = _text(m).split("|")
            refs.append((seller, tid))
        trades = await self._trades(refs)
        return [t for t in trades if user in (t.buyer, t.seller)]

    async def disputes(self) -> list[Trade]:
        """Trades waiting for an admin, oldest dispute first."""
        refs = []
        for m in await self.redis.zrange(DISPUTES, 0, -1):
            seller, _, tid = _text(m).partition("|")
            refs.append((seller, tid))
        trades = await self._trades(refs)
        return [t for t in trades if t.status == "DISPUTED"]

    # -- messages --------------------------------------------------------------------

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
