"""Redis key names. Each shard's keys share one hash tag (docs/internals.md)."""

from __future__ import annotations


def market_prefix(market_id: str) -> str:
    return f"{{m:{market_id}}}:"


def market_cfg(market_id: str) -> str:
    return f"{{m:{market_id}}}:cfg"


def market_stream(market_id: str) -> str:
    return f"{{m:{market_id}}}:ev"


def market_order(market_id: str, order_id: str) -> str:
    return f"{{m:{market_id}}}:o:{order_id}"


def market_id_of_stream(stream_key: str) -> str:
    """``{m:BTC-USD}:ev`` -> ``BTC-USD``."""
    return stream_key[3 : stream_key.index("}")]


GLOBAL_ASSETS = "{g}:assets"
GLOBAL_MARKETS = "{g}:markets"
GLOBAL_ADDRESSES = "{g}:addr"
