"""Read queries over the durable history in PostgreSQL (written by the drain).

Pure data access: each function takes a psycopg ``AsyncConnection`` (or an
``AsyncConnectionPool``) and returns dataclasses with integer amounts in minimal
units (docs/internals.md); turning them into wire decimals is the caller's job
(``engine.units``). Lists are newest first, except candles (oldest first, as
charts draw them). Paged queries return a :class:`Page` whose ``next_cursor``,
passed back as ``cursor``, continues after its last item; cursors are opaque
strings. Invalid arguments raise ``ValueError``.

History lags the engine by the drain's lag (normally well under a second); live
state (open orders, balances) is in Redis.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg

from engine.types import Order

T = TypeVar("T")

MAX_LIMIT = 1000
INTERVALS = ("1m", "5m", "1h", "1d")
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
FINAL_STATUSES = ("FILLED", "CANCELED", "REJECTED", "EXPIRED")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None  # None: no more items


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One side of a trade, from the point of view of ``order_id``'s owner."""

    market: str
    trade_id: int
    order_id: str
    side: str  # buy | sell (this order's side)
    liquidity: str  # maker | taker
    price: int
    size: int
    quote: int
    fee: int
    fee_asset: str | None  # the asset this side received (None if the market is unknown)
    maker_order_id: str
    taker_order_id: str
    seq: int
    ts: int


@dataclass(frozen=True, slots=True)
class TradeRecord:
    market: str
    trade_id: int
    price: int
    size: int
    quote: int
    taker_side: str
    maker_order_id: str
    taker_order_id: str
    seq: int
    ts: int


@dataclass(frozen=True, slots=True)
class MinuteRecord:
    """Trades of one minute: its start, the first trade's id and price, range, volume."""

    start: int
    first_tid: int
    open: int
    high: int
    low: int
    volume: int


@dataclass(frozen=True, slots=True)
class CandleRecord:
    market: str
    interval: str
    start: int  # ms, bucket start (UTC aligned)
    open: int
    high: int
    low: int
    close: int
    volume: int  # base units
    quote_volume: int  # quote units
    trades: int


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One balance change of one asset (deltas; a fill has two records)."""

    user_id: str
    entry_id: str  # account stream entry id
    idx: int  # event index within the entry
    leg: int
    kind: str
    asset: str
    available: int
    held: int
    escrow: int
    ref: str | None  # order / deposit / withdrawal / transfer / P2P id
    market: str | None
    trade_id: int | None
    ts: int


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    id: int
    kind: str
    message: str
    ref: str | None
    ts: int
    read_ts: int | None


# -- plumbing ----------------------------------------------------------------------


@asynccontextmanager
async def _conn(db: Any) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    if isinstance(db, psycopg.AsyncConnection):
        yield db
    else:  # a psycopg_pool.AsyncConnectionPool
        async with db.connection() as conn:
            yield conn


async def _fetch(
    db: Any, sql: str, params: Sequence[Any] | dict[str, Any]
) -> list[tuple[Any, ...]]:
    async with _conn(db) as conn, conn.cursor() as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


def _limit(limit: int) -> int:
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be an integer 1..{MAX_LIMIT}")
    return limit


# what the cursors made here are made of (ids, market ids, integers, '~'): anything else,
# a NUL byte included (PostgreSQL refuses it in text: a 500), is not one of ours
_CURSOR = re.compile(r"[0-9A-Za-z~-]{1,200}")
MAX_BIGINT = 2**63 - 1


def _cursor(cursor: str | None, parts: int) -> list[str] | None:
    if cursor is None:
        return None
    if not _CURSOR.fullmatch(cursor):
        raise ValueError("bad cursor")
    fields = cursor.split("~")
    if len(fields) != parts or not all(fields):
        raise ValueError("bad cursor")
    return fields


def _int(text: str) -> int:
    # every number in our cursors (times, trade, notification and entry ids) is a bigint >= 0
    if not text.isdigit() or int(text) > MAX_BIGINT:
        raise ValueError("bad cursor")
    return int(text)


def _page(rows: list[T], limit: int, cursor_of: Any) -> Page[T]:
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, cursor_of(rows[-1]))
    return Page(rows, None)


# -- orders ------------------------------------------------------------------------------

_ORDER_SELECT = (
    "SELECT id, user_id, market, side, type, tif, post_only, price, amount, filled, cost,"
    " status, created_ts, updated_ts, client_order_id, quote_amount FROM orders"
)


def _order(r: tuple[Any, ...]) -> Order:
    return Order(
        id=r[0],
        user_id=r[1],
        market=r[2],
        side=r[3],
        type=r[4],
        time_in_force=r[5],
        post_only=bool(r[6]),
        price=r[7] or 0,
        amount=r[8] or 0,
        filled=r[9] or 0,
        cost=r[10] or 0,
        status=r[11],
        created_ts=r[12],
        updated_ts=r[13] or r[12],
        client_order_id=r[14] or "",
        quote_amount=r[15] or 0,
    )


def _statuses(status: str | None) -> tuple[str, ...] | None:
    if status is None or status == "all":
        return None
    if status == "open":
        return OPEN_STATUSES
    if status == "closed":
        return FINAL_STATUSES
    if status in OPEN_STATUSES or status in FINAL_STATUSES:
        return (status,)
    raise ValueError("status must be open, closed, all or an order status")


async def orders(
    db: Any,
    user_id: str,
    *,
    market: str | None = None,
    status: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Order]:
    """A user's orders, newest first. ``status``: ``open`` (as last recorded: the live
    fill state of an open order is in Redis), ``closed``, ``all`` or one status."""
    n = _limit(limit)
    where = ["user_id = %s", "created_ts IS NOT NULL", "status IS NOT NULL"]
    params: list[Any] = [user_id]
    if market is not None:
        where.append("market = %s")
        params.append(market)
    statuses = _statuses(status)
    if statuses is not None:
        where.append("status = ANY(%s)")
        params.append(list(statuses))
    c = _cursor(cursor, 2)
    if c is not None:
        where.append("(created_ts, id) < (%s, %s)")
        params += [_int(c[0]), c[1]]
    sql = f"{_ORDER_SELECT} WHERE {' AND '.join(where)} ORDER BY created_ts DESC, id DESC LIMIT %s"
    rows = [_order(r) for r in await _fetch(db, sql, [*params, n + 1])]
    return _page(rows, n, lambda o: f"{o.created_ts}~{o.id}")


async def order(db: Any, user_id: str, order_id: str) -> Order | None:
    """One order of ``user_id`` as recorded, or None."""
    rows = await _fetch(
        db,
        f"{_ORDER_SELECT} WHERE id = %s AND user_id = %s AND created_ts IS NOT NULL"
        " AND status IS NOT NULL",
        (order_id, user_id),
    )
    return _order(rows[0]) if rows else None


# -- fills and public trades --------------------------------------------------------

_FILL_BRANCH = """
    SELECT t.market, t.trade_id, t.{role}_order_id,
           CASE WHEN t.taker_side = 'buy' THEN '{buy_side}' ELSE '{sell_side}' END,
           '{role}', t.price, t.size, t.quote, t.{role}_fee, m.base, m.quote,
           t.maker_order_id, t.taker_order_id, t.seq, t.ts
    FROM trades t LEFT JOIN markets m ON m.id = t.market
    WHERE t.{role}_user = %(user)s {extra}
    ORDER BY t.ts DESC, t.market DESC, t.trade_id DESC LIMIT %(n)s
"""


async def fills(
    db: Any,
    user_id: str,
    *,
    market: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[FillRecord]:
    """A user's fills (maker and taker sides), newest first."""
    n = _limit(limit)
    params: dict[str, Any] = {"user": user_id, "n": n + 1}
    extra = ""
    if market is not None:
        extra += " AND t.market = %(market)s"
        params["market"] = market
    c = _cursor(cursor, 3)
    if c is not None:
        extra += " AND (t.ts, t.market, t.trade_id) < (%(c_ts)s, %(c_m)s, %(c_tid)s)"
        params |= {"c_ts": _int(c[0]), "c_m": c[1], "c_tid": _int(c[2])}
    maker = _FILL_BRANCH.format(role="maker", buy_side="sell", sell_side="buy", extra=extra)
    taker = _FILL_BRANCH.format(role="taker", buy_side="buy", sell_side="sell", extra=extra)
    sql = (
        f"SELECT * FROM (({maker}) UNION ALL ({taker})) f "
        "ORDER BY 15 DESC, 1 DESC, 2 DESC, 5 LIMIT %(n)s"
    )
    out = []
    for r in await _fetch(db, sql, params):
        base, quote = r[9], r[10]
        fee_asset = (base if r[3] == "buy" else quote) if base is not None else None
        out.append(
            FillRecord(
                market=r[0],
                trade_id=r[1],
                order_id=r[2],
                side=r[3],
                liquidity=r[4],
                price=r[5],
                size=r[6],
                quote=r[7],
                fee=r[8],
                fee_asset=fee_asset,
                maker_order_id=r[11],
                taker_order_id=r[12],
                seq=r[13],
                ts=r[14],
            )
        )
    return _page(out, n, lambda f: f"{f.ts}~{f.market}~{f.trade_id}")


async def trades(
    db: Any, market: str, *, limit: int = 100, before_trade_id: int | None = None
) -> list[TradeRecord]:
    """Public trades of ``market``, newest first (trade ids below ``before_trade_id``)."""
    n = _limit(limit)
    where = "market = %s"
    params: list[Any] = [market]
    if before_trade_id is not None:
        where += " AND trade_id < %s"
        params.append(int(before_trade_id))
    rows = await _fetch(
        db,
        "SELECT market, trade_id, price, size, quote, taker_side, maker_order_id,"
        f" taker_order_id, seq, ts FROM trades WHERE {where} ORDER BY trade_id DESC LIMIT %s",
        [*params, n],
    )
    return [TradeRecord(*r) for r in rows]


async def minutes_below(
    db: Any, market: str, since_ts: int, before_trade_id: int
) -> list[MinuteRecord]:
    """The minutes of ``market``'s trades with ids below
    ``before_trade_id`` in the minutes from the one holding ``since_ts`` on: the 1m
    candles wholly below that id, and the trades of the one candle it splits."""
    rows = await _fetch(
        db,
        "SELECT start_ts, volume, first_tid, last_tid, open, high, low FROM candles"
        " WHERE market = %s AND interval = '1m' AND start_ts > %s AND first_tid < %s",
        (market, since_ts - 60_000, before_trade_id),
    )
    out = []
    for start, volume, first_tid, last_tid, open_, high, low in rows:
        if last_tid < before_trade_id:
            out.append(MinuteRecord(start, first_tid, open_, high, low, int(volume)))
            continue
        # this minute's trades only: under clock skew between nodes (trade times are
        # the sending node's) a minute's trade ids need not be contiguous
        trades = await _fetch(
            db,
            "SELECT trade_id, price, size FROM trades WHERE market = %s"
            " AND trade_id >= %s AND trade_id < %s AND ts >= %s AND ts < %s"
            " ORDER BY trade_id",
            (market, first_tid, before_trade_id, start, start + 60_000),
        )
        if trades:
            prices = [t[1] for t in trades]
            volume = sum(t[2] for t in trades)
            out.append(
                MinuteRecord(start, trades[0][0], prices[0], max(prices), min(prices), volume)
            )
    return out


# -- candles ---------------------------------------------------------------------------


async def candles(
    db: Any,
    market: str,
    interval: str,
    *,
    limit: int = 100,
    start_ts: int | None = None,
    end_ts: int | None = None,
) -> list[CandleRecord]:
    """Candles of ``market``, oldest first, starting before ``end_ts`` if given: the
    first ``limit`` starting at or after ``start_ts`` if it is given (as Binance's
    klines), else the last ``limit``. Buckets without trades are absent."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}")
    n = _limit(limit)
    where = "market = %s AND interval = %s"
    params: list[Any] = [market, interval]
    if start_ts is not None:
        where += " AND start_ts >= %s"
        params.append(int(start_ts))
    if end_ts is not None:
        where += " AND start_ts < %s"
        params.append(int(end_ts))
    order = "ASC" if start_ts is not None else "DESC"
    rows = await _fetch(
        db,
        "SELECT market, interval, start_ts, open, high, low, close, volume, quote_volume,"
        f" trades FROM candles WHERE {where} ORDER BY start_ts {order} LIMIT %s",
        [*params, n],
    )
    out = [
        CandleRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], int(r[7]), int(r[8]), r[9])
        for r in rows
    ]
    if start_ts is None:
        out.reverse()
    return out


# -- ledger and notifications --------------------------------------------------------


async def ledger(
    db: Any,
    user_id: str,
    *,
    asset: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[LedgerRecord]:
    """A user's balance changes (the audit log), newest first."""
    n = _limit(limit)
    where = "user_id = %s"
    params: list[Any] = [user_id]
    if asset is not None:
        where += " AND asset = %s"
        params.append(asset)
    c = _cursor(cursor, 3)
    if c is not None:
        ms, _, sq = c[0].partition("-")
        where += " AND (entry_ms, entry_seq, idx, leg) < (%s, %s, %s, %s)"
        params += [_int(ms), _int(sq), _int(c[1]), _int(c[2])]
    rows = await _fetch(
        db,
        "SELECT user_id, entry_ms, entry_seq, idx, leg, kind, asset, available, held, escrow,"
        f" ref, market, trade_id, ts FROM ledger_entries WHERE {where}"
        " ORDER BY entry_ms DESC, entry_seq DESC, idx DESC, leg DESC LIMIT %s",
        [*params, n + 1],
    )
    out = [LedgerRecord(r[0], f"{r[1]}-{r[2]}", *r[3:]) for r in rows]
    return _page(out, n, lambda e: f"{e.entry_id}~{e.idx}~{e.leg}")


async def notifications(
    db: Any, user_id: str, *, limit: int = 50, cursor: str | None = None
) -> Page[NotificationRecord]:
    """A user's notifications, newest first."""
    n = _limit(limit)
    where = "user_id = %s"
    params: list[Any] = [user_id]
    c = _cursor(cursor, 1)
    if c is not None:
        where += " AND id < %s"
        params.append(_int(c[0]))
    rows = await _fetch(
        db,
        f"SELECT id, kind, message, ref, ts, read_ts FROM notifications WHERE {where}"
        " ORDER BY id DESC LIMIT %s",
        [*params, n + 1],
    )
    return _page([NotificationRecord(*r) for r in rows], n, lambda x: str(x.id))


async def notifications_before(
    db: Any, user_id: str, before: int, limit: int = 50
) -> list[NotificationRecord] | None:
    """The user's notifications recorded before notification ``before`` in inbox order
    (their account stream entries), newest first; None if ``before`` is not a
    recorded notification of theirs."""
    n = _limit(limit)
    at = await _fetch(
        db,
        "SELECT entry_ms, entry_seq FROM notifications WHERE id = %s AND user_id = %s"
        " AND entry_ms IS NOT NULL",
        [before, user_id],
    )
    if not at:
        return None
    rows = await _fetch(
        db,
        "SELECT id, kind, message, ref, ts, read_ts FROM notifications WHERE user_id = %s"
        " AND entry_ms IS NOT NULL AND (entry_ms, entry_seq) < (%s, %s)"
        " ORDER BY entry_ms DESC, entry_seq DESC LIMIT %s",
        [user_id, at[0][0], at[0][1], n],
    )
    return [NotificationRecord(*r) for r in rows]
