"""Assets and markets registry: the global ``{g}`` lookups plus market configs."""

from __future__ import annotations

import re
from typing import Any

from engine import keys
from engine import market as market_calls
from engine.types import Asset, EngineError, Market

_SYMBOL = re.compile(r"^[A-Z0-9]{2,10}\Z")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def create_asset(redis: Any, symbol: str, scale: int) -> Asset:
    """Register an asset; re-registering with the same scale is a no-op."""
    if not isinstance(symbol, str) or not _SYMBOL.match(symbol):
        raise EngineError("INVALID_PARAM", "symbol must match [A-Z0-9]{2,10}")
    if type(scale) is not int or not 0 <= scale <= 18:
        raise EngineError("INVALID_PARAM", "scale must be an integer 0..18")
    if not await redis.hsetnx(keys.GLOBAL_ASSETS, symbol, scale):
        existing = int(await redis.hget(keys.GLOBAL_ASSETS, symbol))
        if existing != scale:
            raise EngineError("INVALID_PARAM", f"{symbol} exists with scale {existing}")
    return Asset(symbol, scale)


async def assets(redis: Any) -> dict[str, int]:
    raw = await redis.hgetall(keys.GLOBAL_ASSETS)
    return {_text(k): int(v) for k, v in raw.items()}


async def create_market(
    redis: Any, market: Market, now_ms: int, keep_status: bool = False
) -> Market:
    """Create (or reconfigure) a market whose assets are registered; with
    ``keep_status`` an existing market keeps its status (a new one starts TRADING)."""
    scales = await assets(redis)
    if (
        scales.get(market.base) != market.base_scale
        or scales.get(market.quote) != market.quote_scale
    ):
        raise EngineError("INVALID_PARAM", "base and quote must be registered assets")
    await market_calls.configure(redis, market, now_ms, keep_status)
    await redis.sadd(keys.GLOBAL_MARKETS, market.id)
    return market


async def market_ids(redis: Any) -> list[str]:
    return sorted(_text(m) for m in await redis.smembers(keys.GLOBAL_MARKETS))


async def load_market(redis: Any, market_id: str) -> Market:
    cfg = await market_calls.read_config(redis, market_id)
    if cfg is None:
        raise EngineError("UNKNOWN_MARKET", f"unknown market {market_id}")
    scales = await assets(redis)
    return Market(
        id=market_id,
        base=cfg["base"],
        quote=cfg["quote"],
        base_scale=int(cfg["bscale"]),
        quote_scale=scales.get(cfg["quote"], 8),
        tick=int(cfg["tick"]),
        lot=int(cfg["lot"]),
        min_size=int(cfg["min"]),
        max_notional=int(cfg["maxn"]),
        maker_fee_bps=int(cfg["mfee"]),
        taker_fee_bps=int(cfg["tfee"]),
        status=cfg["status"],  # type: ignore[arg-type]
    )


async def markets(redis: Any) -> list[Market]:
    return [await load_market(redis, m) for m in await market_ids(redis)]
