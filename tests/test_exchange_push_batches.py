"""Order pushes of calls published together: each call's pushes show the orders as
they were right after that call, also when later calls changed them again."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from api.redisbatch import batching
from engine.exchange import Exchange, user_channel
from engine.types import OrderRequest
from engine.units import parse_price, parse_size
from tests.engine_helpers import funded_exchange


@pytest.fixture
async def ex(redis: Any) -> Any:
    exchange = await funded_exchange(redis, batching(redis))  # as the web node has it
    yield exchange
    await exchange.close()


async def limit(ex: Exchange, side: str, amount: str, price: str, tif: str = "GTC") -> Any:
    m = await ex.market("BTC-USD")
    size, ticks = parse_size(m, amount), parse_price(m, price)
    return OrderRequest("BTC-USD", side, "limit", size, ticks, tif)  # type: ignore[arg-type]


async def test_a_maker_hit_by_concurrent_takers_gets_each_fill_in_turn(ex: Exchange) -> None:
    pubsub = ex.redis.pubsub()
    await pubsub.subscribe(user_channel("alice"))
    await ex.place_order("alice", await limit(ex, "sell", "0.3", "30000.00"))
    take = await limit(ex, "buy", "0.1", "30000.00", "IOC")
    await asyncio.gather(*(ex.place_order("bob", take) for _ in range(3)))
    await ex.close()
    got: list[tuple[str, str, str]] = []
    deadline = asyncio.get_running_loop().time() + 3
    while len(got) < 4 and asyncio.get_running_loop().time() < deadline:
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if msg is not None and (push := orjson.loads(msg["data"]))["channel"] == "orders":
            got.append((push["exec_type"], push["order"]["status"], push["order"]["filled"]))
    await pubsub.aclose()
    assert got == [
        ("NEW", "NEW", "0.00000"),
        ("TRADE", "PARTIALLY_FILLED", "0.10000"),
        ("TRADE", "PARTIALLY_FILLED", "0.20000"),
        ("TRADE", "FILLED", "0.30000"),
    ]
