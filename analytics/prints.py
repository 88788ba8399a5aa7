"""Trades -> prints (pure): one print per taker order.

One taker order that sweeps several resting orders makes several trades in the same
engine call. They are one decision of one trader and happen at one instant, so the
model sees them as one *print*: its side, total size, first and last price. The
next-move label is defined on the prints' last prices (:mod:`analytics.features`).
Consecutive trades of the same taker order form one print.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.dataset import I64, Trades


@dataclass(frozen=True)
class Prints:
    """One entry per print, in time order. Prices in ticks (integers)."""

    first: I64  # price of its first fill, ticks
    last: I64  # price of its last fill, ticks
    size: I64  # total base minimal units
    side: I64  # +1 taker bought, -1 taker sold
    fills: I64  # number of trades
    ts: I64  # ms, time of its last fill
    trade_id: I64  # trade id of its last fill

    def __len__(self) -> int:
        return len(self.last)


def to_prints(trades: Trades) -> Prints:
    """Group consecutive trades of one taker order into prints."""
    n = len(trades)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Prints(empty, empty, empty, empty, empty, empty, empty)
    starts = np.flatnonzero(np.r_[True, trades.taker_order[1:] != trades.taker_order[:-1]])
    ends = np.r_[starts[1:], n] - 1
    ticks = trades.price // trades.tick
    return Prints(
        first=ticks[starts],
        last=ticks[ends],
        size=np.add.reduceat(trades.size, starts),
        side=np.where(trades.taker_buy[starts], 1, -1).astype(np.int64),
        fills=(ends - starts + 1).astype(np.int64),
        ts=trades.ts[ends],
        trade_id=trades.trade_id[ends],
    )
