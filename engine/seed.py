"""Default assets and markets of a fresh exchange (idempotent)."""

from __future__ import annotations

import time
from typing import Any

from engine import registry
from engine.units import market_from_wire

DEFAULT_ASSETS = {"BTC": 8, "ETH": 8, "SOL": 8, "USD": 8, "USDT": 8}

DEFAULT_MARKETS = [
    {
        "id": "BTC-USD",
        "base": "BTC",
        "quote": "USD",
        "price_increment": "0.01",
        "size_increment": "0.00001",
        "min_size": "0.0001",
        "maker_fee_bps": 10,
        "taker_fee_bps": 20,
    },
    {
        "id": "ETH-USD",
        "base": "ETH",
        "quote": "USD",
        "price_increment": "0.01",
        "size_increment": "0.0001",
        "min_size": "0.001",
        "maker_fee_bps": 10,
        "taker_fee_bps": 20,
    },
    {
        "id": "SOL-USD",
        "base": "SOL",
        "quote": "USD",
        "price_increment": "0.001",
        "size_increment": "0.001",
        "min_size": "0.01",
        "maker_fee_bps": 10,
        "taker_fee_bps": 20,
    },
]


async def seed_defaults(redis: Any) -> list[str]:
    """Register the default assets and create the default markets if missing."""
    for symbol, scale in DEFAULT_ASSETS.items():
        await registry.create_asset(redis, symbol, scale)
    scales = await registry.assets(redis)
    created = []
    existing = set(await registry.market_ids(redis))
    for spec in DEFAULT_MARKETS:
        if spec["id"] in existing:
            continue
        market = market_from_wire(spec, scales)
        await registry.create_market(redis, market, int(time.time() * 1000))
        created.append(market.id)
    return created
