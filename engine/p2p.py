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
transition even when a request or a job is retried. A call that moves the shard
owner's balance (an offer's escrow, a trade opened on a buy offer, a trade ending)
is followed by the owner's private ``balances`` push of that asset, once: a replay
or a call that left the balance as it was pushes nothing (best effort; the buyer's
credit of a release is pushed by the settler that applies it).

The class is layered, one concept a module, each using the ones before it:
``p2p_core`` (Lua calls, pushes, notices, trades by id) -> ``p2p_offers`` ->
``p2p_take`` (opening a trade) -> ``p2p_trades`` (transitions, disputes, messages)
-> here: ``P2P`` with the repair sweep. Pure rules and record formats are in
``p2p_rules``, key names in ``p2p_keys``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.p2p_core import MAX_LIST, ExpiryScheduler, _text, now_ms
from engine.p2p_keys import EXPIRY, RESERVATIONS
from engine.p2p_rules import FINAL
from engine.p2p_trades import ExpireOutcome, ExpireResult, Resolution, Trades

__all__ = [
    "INDEX_GRACE_MS",
    "MAX_LIST",
    "P2P",
    "RESERVE_GRACE_MS",
    "ExpireOutcome",
    "ExpireResult",
    "ExpiryScheduler",
    "Resolution",
    "SweepResult",
    "now_ms",
]

RESERVE_GRACE_MS = 30_000  # a reservation without its trade this long is aborted
INDEX_GRACE_MS = 60_000


@dataclass(slots=True)
class SweepResult:
    expired: list[str] = field(default_factory=list)
    reservations_settled: int = 0
    aborted: list[str] = field(default_factory=list)
    offers_pruned: int = 0


class P2P(Trades):
    """One per process; safe to share between tasks.

    ``scheduler`` is called with ``(trade id, payment deadline)`` after a trade opens
    (the arq expiry job, ``workers.p2p_jobs``); ``sweep`` is the safety net.
    """

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
        result.offers_pruned = await self._prune_offers(now - INDEX_GRACE_MS)
        return result
