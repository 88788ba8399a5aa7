"""P2P offers: post, edit, pause, close and list (one call of ``lua/30_p2p.lua`` in
the owner's shard per change; the listing index ``OFFERS`` is written before it)."""

from __future__ import annotations

from engine import accounts
from engine.ids import new_order_id
from engine.p2p_core import Moved, P2PCore, _check_id, _limit, _raise, _record, _rid, _text, now_ms
from engine.p2p_keys import OFFER_OWNER, OFFERS, offer_key, prefix, shard
from engine.p2p_rules import Offer, OfferChanges, OfferSide, OfferSpec, encode_methods, offer_from
from engine.types import EngineError


def listing(o: Offer) -> str:
    """The offer's member of the ``OFFERS`` index."""
    return f"{o.side}|{o.asset}|{o.fiat}|{o.owner}|{o.id}"


class Offers(P2PCore):
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
        pipe.hgetall(keys[0])
        pipe.fcall("p2p_offer_create", len(keys), *keys, offer_id, spec.side, spec.asset,
                   spec.fiat, spec.price, spec.min_amount, spec.max_amount, spec.amount,
                   encode_methods(spec.payment_methods), spec.payment_window, now,
                   _rid(request_id))  # fmt: skip
        pipe.hgetall(keys[0])
        *_, before, reply, after = await pipe.execute(raise_on_error=False)
        offer = offer_from(_raise(reply)[1])
        if offer.side == "sell":
            await self._push_balance(user, offer.asset, Moved(before, after))
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
        await self.redis.zrem(OFFERS, listing(offer))
        if offer.side == "sell":
            await self._push_balance(user, offer.asset, bal)
        return offer

    async def get_offer(self, offer_id: str) -> Offer:
        _check_id(offer_id, "offer")
        owner = await self.redis.hget(OFFER_OWNER, offer_id)
        raw = await self.redis.hgetall(offer_key(_text(owner), offer_id)) if owner else None
        if not raw:
            raise EngineError("UNKNOWN_ORDER", "unknown offer")
        return offer_from(_record(raw))

    async def _offers(self, refs: list[tuple[str, str]]) -> list[Offer]:
        """Offers by ``(owner, offer id)``, skipping missing ones."""
        if not refs:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for owner, oid in refs:
            pipe.hgetall(offer_key(owner, oid))
        return [offer_from(_record(raw)) for raw in await pipe.execute() if raw]

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
        return offers[: _limit(limit)]

    async def my_offers(self, user: str, *, limit: int = 100) -> list[Offer]:
        """``user``'s offers, newest first (closed ones included)."""
        ids = await self.redis.zrevrange(prefix(user) + "p2p:ol", 0, _limit(limit) - 1)
        return await self._offers([(user, _text(i)) for i in ids])

    async def _prune_offers(self, before: int) -> int:
        """Drop index entries older than ``before`` of offers that are gone or CLOSED."""
        rows = await self.redis.zrangebyscore(OFFERS, "-inf", before)
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
