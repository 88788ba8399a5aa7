"""A market's trades from PostgreSQL (the drain's ``trades`` table) as integer arrays.

Prices stay integers in quote minimal units per whole base unit and sizes in base
minimal units (docs/internals.md); the market's ``tick`` comes along so that prices
can be counted in ticks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import psycopg

I64 = npt.NDArray[np.int64]

_TRADES_SQL = (
    "SELECT trade_id, price, size, taker_side = 'buy', taker_order_id, ts FROM trades"
    " WHERE market = %s AND ts >= %s AND ts < %s ORDER BY trade_id"
)


class TooLittleData(ValueError):
    """The history holds too few trades (or samples) for what was asked."""


@dataclass(frozen=True)
class Trades:
    """Trades of one market in trade id order; every array has one entry per trade."""

    market: str
    tick: int  # price increment, quote minimal units per whole base unit
    trade_id: I64
    price: I64  # quote minimal units per whole base unit
    size: I64  # base minimal units
    taker_buy: npt.NDArray[np.bool_]  # the taker (aggressor) bought
    taker_order: I64  # taker order number: equal for the fills of one taker order
    ts: I64  # engine time, ms since the epoch

    def __len__(self) -> int:
        return len(self.trade_id)

    @classmethod
    def from_rows(
        cls, market: str, tick: int, rows: list[tuple[int, int, int, bool, str, int]]
    ) -> Trades:
        """Rows ``(trade_id, price, size, taker_buy, taker_order_id, ts)`` by trade id."""
        numbers: dict[str, int] = {}
        order = [numbers.setdefault(r[4], len(numbers)) for r in rows]
        return cls(
            market=market,
            tick=tick,
            trade_id=np.array([r[0] for r in rows], dtype=np.int64),
            price=np.array([r[1] for r in rows], dtype=np.int64),
            size=np.array([r[2] for r in rows], dtype=np.int64),
            taker_buy=np.array([r[3] for r in rows], dtype=np.bool_),
            taker_order=np.array(order, dtype=np.int64),
            ts=np.array([r[5] for r in rows], dtype=np.int64),
        )


def load_trades(
    database_url: str,
    market: str,
    since_ms: int = 0,
    until_ms: int = 2**62,
    connect_timeout: int = 5,
) -> Trades:
    """Trades of ``market`` with ``since_ms <= ts < until_ms``, by trade id.

    Raises :class:`TooLittleData` for a market the history does not know.
    """
    with psycopg.connect(database_url, connect_timeout=connect_timeout) as conn:
        row = conn.execute("SELECT tick FROM markets WHERE id = %s", (market,)).fetchone()
        if row is None:
            known = [r[0] for r in conn.execute("SELECT id FROM markets ORDER BY id")]
            raise TooLittleData(
                f"unknown market {market!r}; the history knows: {', '.join(known) or 'none'}"
            )
        rows = conn.execute(_TRADES_SQL, (market, since_ms, until_ms)).fetchall()
    return Trades.from_rows(market, int(row[0]), rows)
