"""Taking a P2P offer: opening a PENDING trade with the seller's amount in escrow.

A SELL offer's amount is already escrowed in its owner's (the seller's) shard: one
``p2p_take`` call there. A BUY offer spans two shards: ``p2p_reserve`` on the offer
(buyer's shard), then ``p2p_open`` with the taker's escrow (seller's shard). A refused
open tombstones the trade id (``p2p_abort``) and returns the reservation
(``p2p_unreserve``); a crash in between is repaired by ``P2P.sweep``.
"""

from __future__ import annotations

from engine import accounts
from engine.ids import new_order_id
from engine.p2p_core import _raise, _rid, _text, log, now_ms
from engine.p2p_keys import EXPIRY, RESERVATIONS, TRADE_PARTIES, offer_key, prefix, shard, trade_key
from engine.p2p_offers import Offers
from engine.p2p_rules import (
    Offer,
    Trade,
    check_units,
    encode_methods,
    fiat_amount,
    offer_from,
    trade_from,
)
from engine.types import EngineError


class Taking(Offers):
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
