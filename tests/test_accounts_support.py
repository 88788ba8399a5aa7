"""Helpers of the account tests (no tests here): funding, key dumps, synthetic markets.

``SyntheticMarket`` appends market stream entries in the format of docs/internals.md
("Market events") for orders whose holds were taken with ``engine.accounts.hold`` --
what ``mkt_place``/``mkt_cancel`` would emit -- so settlement is tested on its own.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import orjson

from engine import accounts, addresses, keys, registry
from engine.settlement import FEES_USER
from engine.types import Market

ASSETS = {"BTC": 8, "USD": 8, "ETH": 8}
BTC_USD = Market(
    id="BTC-USD",
    base="BTC",
    quote="USD",
    base_scale=8,
    quote_scale=8,
    tick=1_000_000,  # 0.01 USD
    lot=1_000,  # 0.00001 BTC
    min_size=1_000,
    max_notional=10**15,
    maker_fee_bps=10,
    taker_fee_bps=20,
)
COIN = 10**8


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def setup_assets(redis: Any) -> None:
    for symbol, scale in ASSETS.items():
        await registry.create_asset(redis, symbol, scale)


async def fund(
    redis: Any, user: str, asset: str, amount: int, deposit_id: str | None = None
) -> str:
    """Deposit ``amount`` to ``user``'s address; returns the address."""
    address = await addresses.deposit_address(redis, user, asset)
    await accounts.deposit(
        redis, deposit_id or f"dep-{user}-{asset}-{amount}", address, asset, amount
    )
    return address


async def dump_account(redis: Any, user: str) -> dict[str, Any]:
    """Every key of the account's hash tag with its content, canonically."""
    out: dict[str, Any] = {}
    for key in await _keys(redis, f"{{u:{user}}}*"):
        kind = _s(await redis.type(key))
        if kind == "hash":
            value: Any = sorted((_s(k), _s(v)) for k, v in (await redis.hgetall(key)).items())
        elif kind == "stream":
            value = [
                (_s(i), sorted((_s(k), _s(v)) for k, v in f.items()))
                for i, f in await redis.xrange(key)
            ]
        else:
            value = _s(await redis.get(key))
        out[key] = value
    return out


async def _keys(redis: Any, pattern: str) -> list[str]:
    return sorted([_s(k) async for k in redis.scan_iter(match=pattern, count=1000)])


async def totals(redis: Any, users: list[str]) -> dict[str, int]:
    """Per asset: available + held + escrow over ``users`` and the fee account."""
    out: dict[str, int] = {}
    for user in {*users, FEES_USER}:
        for b in await accounts.balances(redis, user):
            out[b.asset] = out.get(b.asset, 0) + b.total
    return out


@dataclass
class Order:
    id: str
    user: str
    side: str
    price: int
    amount: int
    filled: int = 0
    cost: int = 0
    open: bool = True


class SyntheticMarket:
    """Writes market stream entries for orders held through ``engine.accounts``."""

    _ids = itertools.count(1)

    def __init__(self, redis: Any, market: Market = BTC_USD) -> None:
        self.redis = redis
        self.m = market
        self.seq = 0
        self.tid = 0
        self.now = 1_700_000_000_000

    async def create(self) -> None:
        await registry.create_market(self.redis, self.m, self.now)
        self.seq = int(await self.redis.hget(keys.market_cfg(self.m.id), "seq"))

    def notional(self, price: int, size: int) -> int:
        return price * size // 10**self.m.base_scale

    async def hold(self, user: str, side: str, price: int, amount: int) -> Order | None:
        """Hold for a limit order; None when funds are insufficient."""
        order = Order(f"o{next(self._ids)}", user, side, price, amount)
        asset, cost = (
            (self.m.quote, self.notional(price, amount)) if side == "buy" else (self.m.base, amount)
        )
        try:
            await accounts.hold(self.redis, user, order.id, self.m.id, asset, cost)
        except accounts.EngineError as exc:
            assert exc.code == "INSUFFICIENT_FUNDS"
            return None
        return order

    def _ev(self, body: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        return {"seq": self.seq, "ts": self.now, **body}

    def _done(self, o: Order, reason: str) -> dict[str, Any]:
        o.open = False
        return self._order_ev("done", o, reason=reason, msg="", filled=o.filled, cost=o.cost)

    def _order_ev(self, kind: str, o: Order, **extra: Any) -> dict[str, Any]:
        base = {"e": kind, "id": o.id, "u": o.user, "side": o.side, "amount": o.amount}
        return self._ev({**base, **extra})

    async def _append(self, events: list[dict[str, Any]]) -> None:
        first = events[0]["seq"]
        await self.redis.xadd(
            keys.market_stream(self.m.id), {"f": first, "l": self.seq, "e": orjson.dumps(events)}
        )
        await self.redis.hset(keys.market_cfg(self.m.id), "seq", self.seq)

    async def rest(self, o: Order) -> None:
        await self._append([self._order_ev("accepted", o, type="limit", price=o.price)])

    async def take(self, taker: Order, maker: Order, size: int) -> None:
        """``taker`` crosses ``maker`` for ``size`` at the maker's price; the taker is done
        (IOC-like: its remainder expires) and the maker too when filled."""
        quote = self.notional(maker.price, size)
        self.tid += 1
        # each side pays its fee in the asset it receives, rounded up
        base_fee, quote_fee = (size, quote) if taker.side == "buy" else (quote, size)
        tfee = -(-base_fee * self.m.taker_fee_bps // 10_000)
        mfee = -(-quote_fee * self.m.maker_fee_bps // 10_000)
        for o in (taker, maker):
            o.filled += size
            o.cost += quote
        trade = {
            "e": "trade", "tid": self.tid, "price": maker.price, "size": size, "quote": quote,
            "side": taker.side, "maker": maker.id, "taker": taker.id, "mu": maker.user,
            "tu": taker.user, "mfee": mfee, "tfee": tfee,
        }  # fmt: skip
        events = [
            self._order_ev("accepted", taker, type="limit", price=taker.price),
            self._ev(trade),
            self._done(taker, "FILLED" if taker.filled == taker.amount else "EXPIRED"),
        ]
        if maker.filled == maker.amount:
            events.append(self._done(maker, "FILLED"))
        await self._append(events)

    async def cancel(self, o: Order) -> None:
        await self._append([self._done(o, "CANCELED")])

    async def reduce(self, o: Order, new_amount: int) -> None:
        o.amount = new_amount
        await self._append([self._order_ev("reduced", o, filled=o.filled, price=o.price)])


async def funded_market(redis: Any) -> SyntheticMarket:
    """Assets, a synthetic BTC-USD market, alice with 100,000 USD and bob with 10 BTC."""
    await setup_assets(redis)
    m = SyntheticMarket(redis)
    await m.create()
    await fund(redis, "alice", "USD", 100_000 * COIN)
    await fund(redis, "bob", "BTC", 10 * COIN)
    return m
