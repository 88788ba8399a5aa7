"""The market shape every benchmark (and the engine tests) trades on."""

from __future__ import annotations

from engine.types import Market


def usd_market(base: str) -> Market:
    """``<base>-USD``: tick 0.01 USD x lot 0.00001 base (both scale 8), fees 10/20 bps."""
    return Market(
        id=f"{base}-USD",
        base=base,
        quote="USD",
        base_scale=8,
        quote_scale=8,
        tick=1_000_000,
        lot=1_000,
        min_size=1_000,
        max_notional=10**15,
        maker_fee_bps=10,
        taker_fee_bps=20,
    )
