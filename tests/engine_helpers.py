"""Shared helpers of the engine tests: a test market, a funded exchange facade and
canonical key dumps."""

from __future__ import annotations

from typing import Any

from engine import addresses
from engine import market as M
from engine.exchange import Exchange
from engine.seed import seed_defaults
from engine.types import Market
from ops.bench.markets import usd_market

# tick 0.01 USD (scale 8) x lot 0.00001 BTC (scale 8) -> mult 10 quote units a lot.
BTC_USD = usd_market("BTC")

TICK = BTC_USD.tick
LOT = BTC_USD.lot


def px(dollars: float | int) -> int:
    """Test shorthand: a price in whole dollars (or cents) -> price units."""
    return round(dollars * 100) * TICK


async def new_market(redis: Any, market: Market = BTC_USD) -> Market:
    await M.configure(redis, market, 1)
    return market


async def funded_exchange(redis: Any, client: Any = None) -> Exchange:
    """The default assets and markets, and an ``Exchange`` over ``client`` (default:
    ``redis``) where alice deposited 2 BTC and bob 100,000 USD."""
    await seed_defaults(redis)
    exchange = await Exchange.connect(redis if client is None else client)
    for user, asset, amount in [("alice", "BTC", 2 * 10**8), ("bob", "USD", 100_000 * 10**8)]:
        address = await addresses.deposit_address(redis, user, asset)
        await exchange.deposit(f"dep-{user}", address, asset, amount)
    return exchange


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def dump_market(redis: Any, market_id: str) -> dict[str, Any]:
    """Every key of the market's hash tag with its full content, canonically."""
    out: dict[str, Any] = {}
    async for raw in redis.scan_iter(match=f"{{m:{market_id}}}*", count=1000):
        key = _s(raw)
        kind = _s(await redis.type(key))
        if kind == "hash":
            value: Any = sorted((_s(k), _s(v)) for k, v in (await redis.hgetall(key)).items())
        elif kind == "zset":
            value = [(_s(m), s) for m, s in await redis.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            value = [
                (_s(i), sorted((_s(k), _s(v)) for k, v in f.items()))
                for i, f in await redis.xrange(key)
            ]
        elif kind == "string":
            value = _s(await redis.get(key))
        elif kind == "set":
            value = sorted(_s(m) for m in await redis.smembers(key))
        else:
            value = kind
        out[key] = (kind, value)
    return out
