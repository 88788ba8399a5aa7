"""A batch of stream entries -> rows -> PostgreSQL, in the caller's transaction.

:func:`convert` turns entries into rows (:mod:`workers.rows`), setting apart the
ones that cannot be converted; :func:`write_rows` writes them: insert-only tables by
COPY (straight into the table when no row exists yet, else into a session temp table
+ ``INSERT ... ON CONFLICT DO NOTHING``), the others by upserts that keep the newest
state, candles last. Nothing here commits: the drain (:mod:`workers.drain`) commits,
then acknowledges the entries.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import psycopg

from workers import candles
from workers.rows import (
    DEPOSIT_COLUMNS,
    LEDGER_COLUMNS,
    MARKET_COLUMNS,
    MARKET_EVENT_COLUMNS,
    NOTIFICATION_COLUMNS,
    ORDER_COLUMNS,
    ORDER_CREATED,
    ORDER_IDENTITY,
    ORDER_STATE,
    P2P_MESSAGE_COLUMNS,
    P2P_OFFER_COLUMNS,
    P2P_TRADE_COLUMNS,
    TRADE_COLUMNS,
    TRANSFER_COLUMNS,
    WITHDRAWAL_COLUMNS,
    PoisonEntry,
    Rows,
    TradeRow,
    account_entry_rows,
    market_entry_rows,
    stream_owner,
)
from workers.streams import Entry


def entry_rows(entry: Entry, into: Rows | None = None) -> Rows:
    """Rows of one stream entry (added to ``into``); PoisonEntry if it cannot be converted."""
    kind, owner = stream_owner(entry.stream)
    if kind == "m":
        return market_entry_rows(owner, entry.fields, into)
    if kind == "u":
        return account_entry_rows(owner, entry.id, entry.fields, into)
    raise PoisonEntry(f"no converter for stream {entry.stream}")


_BAD_ENTRY = (PoisonEntry, ValueError, TypeError, KeyError)


@dataclass(slots=True)
class Converted:
    """A batch turned into rows: the convertible entries, their rows, the others."""

    good: list[Entry]
    rows: Rows
    bad: list[tuple[Entry, str]]

    def merged(self, other: Converted) -> Converted:
        """Both batches as one (``self`` is used up)."""
        self.rows.extend(other.rows)
        return Converted(self.good + other.good, self.rows, self.bad + other.bad)


def convert(entries: list[Entry]) -> Converted:
    """Rows of a batch. Fast path into one accumulator; if some entry is bad, once
    more entry by entry to set the bad ones apart."""
    rows = Rows()
    owners: dict[str, tuple[str, str]] = {}
    try:
        for e in entries:
            kind_owner = owners.get(e.stream)
            if kind_owner is None:
                kind_owner = owners[e.stream] = stream_owner(e.stream)
            if kind_owner[0] == "m":
                market_entry_rows(kind_owner[1], e.fields, rows)
            else:
                entry_rows(e, rows)
        return Converted(entries, rows, [])
    except _BAD_ENTRY:
        pass
    good: list[Entry] = []
    bad: list[tuple[Entry, str]] = []
    rows = Rows()
    for e in entries:
        try:
            one = entry_rows(e)
        except _BAD_ENTRY as exc:
            bad.append((e, f"{type(exc).__name__}: {exc}"))
            continue
        good.append(e)
        rows.extend(one)
    return Converted(good, rows, bad)


_TEMP_TABLES = {
    "_d_trades": ("trades", TRADE_COLUMNS),
    "_d_orders": ("orders", ORDER_COLUMNS),
    "_d_market_events": ("market_events", MARKET_EVENT_COLUMNS),
    "_d_ledger": ("ledger_entries", LEDGER_COLUMNS),
}
_TEMP_TABLE = {table: temp for temp, (table, _) in _TEMP_TABLES.items()}  # table -> temp

_ORDERS_UPSERT = (
    "INSERT INTO orders AS o ({cols}) SELECT {cols} FROM _d_orders ORDER BY id "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = COALESCE(o.{c}, EXCLUDED.{c})" for c in ORDER_IDENTITY)
    + ", "
    + ", ".join(
        f"{c} = CASE WHEN EXCLUDED.seq > o.seq THEN COALESCE(EXCLUDED.{c}, o.{c}) "
        f"ELSE COALESCE(o.{c}, EXCLUDED.{c}) END"
        for c in ORDER_STATE
    )
    + ", amount = CASE WHEN EXCLUDED.amount_seq > COALESCE(o.amount_seq, -1) "
    "THEN EXCLUDED.amount ELSE o.amount END"
    ", amount_seq = GREATEST(o.amount_seq, EXCLUDED.amount_seq)"
    ", seq = GREATEST(o.seq, EXCLUDED.seq)"
).format(cols=", ".join(ORDER_COLUMNS))

_MARKETS_UPSERT = (
    "INSERT INTO markets AS m ({cols}) VALUES ({ph}) ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in MARKET_COLUMNS[1:])
    + " WHERE m.seq < EXCLUDED.seq"
).format(cols=", ".join(MARKET_COLUMNS), ph=", ".join(["%s"] * len(MARKET_COLUMNS)))


def _values(cols: tuple[str, ...]) -> str:
    return f"({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"


_DEPOSITS_INSERT = f"INSERT INTO deposits {_values(DEPOSIT_COLUMNS)} ON CONFLICT DO NOTHING"
_WITHDRAWALS_UPSERT = (
    f"INSERT INTO withdrawals AS w {_values(WITHDRAWAL_COLUMNS)} ON CONFLICT (id) DO UPDATE SET "
    "status = CASE WHEN w.status = 'PENDING' THEN EXCLUDED.status ELSE w.status END, "
    "address = COALESCE(w.address, EXCLUDED.address), "
    "created_ts = LEAST(w.created_ts, EXCLUDED.created_ts), "
    "updated_ts = GREATEST(w.updated_ts, EXCLUDED.updated_ts)"
)
_P2P_OFFERS_UPSERT = (
    f"INSERT INTO p2p_offers AS r {_values(P2P_OFFER_COLUMNS)} ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in P2P_OFFER_COLUMNS[1:])
    + " WHERE r.version < EXCLUDED.version"
)
_P2P_TRADES_UPSERT = (
    f"INSERT INTO p2p_trades AS r {_values(P2P_TRADE_COLUMNS)} ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in P2P_TRADE_COLUMNS[1:])
    + " WHERE r.version < EXCLUDED.version"
)
_P2P_MESSAGES_INSERT = (
    f"INSERT INTO p2p_messages {_values(P2P_MESSAGE_COLUMNS)} ON CONFLICT DO NOTHING"
)
_NOTIFICATIONS_INSERT = (  # exactly once by notification id
    f"INSERT INTO notifications {_values(NOTIFICATION_COLUMNS)} ON CONFLICT (id) DO NOTHING"
)
_TRANSFERS_UPSERT = (
    f"INSERT INTO transfers AS t {_values(TRANSFER_COLUMNS)} ON CONFLICT (id) DO UPDATE SET "
    "to_user = COALESCE(t.to_user, EXCLUDED.to_user), ts = LEAST(t.ts, EXCLUDED.ts), "
    "credited_ts = COALESCE(t.credited_ts, EXCLUDED.credited_ts)"
)


async def prepare_connection(conn: psycopg.AsyncConnection[Any]) -> None:
    """Session temp tables used as COPY targets (emptied at every commit)."""
    for temp, (table, cols) in _TEMP_TABLES.items():
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {temp} ON COMMIT DELETE ROWS AS "
            f"SELECT {', '.join(cols)} FROM {table} WITH NO DATA"
        )
        await conn.execute(f"ALTER TABLE {temp} SET (autovacuum_enabled = false)")
    await conn.commit()


# Tables of market entries, copied straight into the table (the fast path) in binary:
# no value is formatted as text in the drain and parsed again by PostgreSQL (the raw
# event text of market_events is sent as is). Only when every value has its column's
# type (int for int8, str for text, None): a row with another (a JSON float, a numeric
# string, a number as user id, ...) makes the COPY start over as text, where PostgreSQL
# accepts or refuses it as before; a batch whose entries have a JSON true/false
# (Rows.json_booleans: binary int8 would take true as 1) is copied as text.
_BINARY_TYPES = {
    "market_events": ("text", "int8", "int8", "int8", "text"),
    "trades": ("text", "int8", "int8", "int8", "int8", "text", "text", "text", "text", "text",
               "int8", "int8", "int8", "int8"),
    "orders": ("text", "text", "text", "text", "int8", "text", "text", "bool", "text", "text",
               "int8", "int8", "int8", "int8", "int8", "int8", "int8", "text", "text", "int8"),
}  # fmt: skip


class _NotBinary(Exception):
    """A row value the binary COPY cannot send as its column's type."""


async def _copy(
    cur: psycopg.AsyncCursor[Any],
    table: str,
    cols: tuple[str, ...],
    rows: Any,
    binary: tuple[str, ...] | None = None,
) -> None:
    """COPY ``rows`` into ``table``: as text, or in binary with the column types
    ``binary`` (_NotBinary, the COPY aborted, if some value is not of its type)."""
    options = " (FORMAT BINARY)" if binary is not None else ""
    async with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN{options}") as cp:
        if binary is not None:
            cp.set_types(list(binary))
        fmt = cp.formatter.write_row  # formats into a buffer, returns it when full
        for row in rows:
            try:
                data = fmt(row)
            except (TypeError, ValueError, OverflowError) as exc:
                if binary is None:
                    raise
                raise _NotBinary(f"{table}: {exc}") from exc
            if data:
                await cp.write(data)


async def _copy_new(
    conn: psycopg.AsyncConnection[Any],
    cur: psycopg.AsyncCursor[Any],
    table: str,
    cols: tuple[str, ...],
    rows: Any,
    binary: bool = False,
) -> bool:
    """COPY ``rows`` straight into ``table`` in a savepoint: the fast path when none
    of them exists yet. False (nothing written) if some row is already there. With
    ``binary``, in binary if ``table`` has types in ``_BINARY_TYPES`` and every value
    has its column's type, else as text."""
    types = _BINARY_TYPES.get(table) if binary else None
    try:
        async with conn.transaction():
            await _copy(cur, table, cols, rows, types)
    except psycopg.errors.UniqueViolation:
        return False
    except _NotBinary:  # rolled back: once more as text, PostgreSQL judges the values
        return await _copy_new(conn, cur, table, cols, rows)
    return True


async def _insert_new(
    conn: psycopg.AsyncConnection[Any],
    cur: psycopg.AsyncCursor[Any],
    table: str,
    cols: tuple[str, ...],
    rows: list[Any],
    order_by: str,
    returning: str = "",
    binary: bool = False,
) -> list[Any] | None:
    """Insert into an insert-only ``table`` the ``rows`` it lacks: None when none was
    there (one COPY, all new), else the ``RETURNING`` rows of COPY into its session
    temp table (``_TEMP_TABLE``) + ``INSERT ... ON CONFLICT DO NOTHING`` in
    ``order_by`` order."""
    if await _copy_new(conn, cur, table, cols, rows, binary):
        return None
    temp = _TEMP_TABLE[table]
    await _copy(cur, temp, cols, rows)
    names = ", ".join(cols)
    await cur.execute(
        f"INSERT INTO {table} ({names}) SELECT {names} FROM {temp} ORDER BY {order_by} "
        "ON CONFLICT DO NOTHING" + (f" RETURNING {returning}" if returning else "")
    )
    return await cur.fetchall() if returning else []


async def write_rows(conn: psycopg.AsyncConnection[Any], rows: Rows) -> int:
    """Write ``rows`` in the current transaction; the number of trades newly inserted.

    Insert-only tables take the COPY fast path and fall back, on a re-delivered
    row, to COPY into a temp table + INSERT ... ON CONFLICT DO NOTHING. Rows are
    sorted by key so that concurrent drains lock in the same order. Candles, the
    rows every batch of a market updates, come last: held locked only until COMMIT."""
    fresh: list[TradeRow] = []
    binary = not rows.json_booleans
    async with conn.cursor() as cur:
        if rows.trades:
            trades = sorted(rows.trades, key=_KEY2)
            inserted = await _insert_new(
                conn, cur, "trades", TRADE_COLUMNS, trades, "market, trade_id",
                returning="market, trade_id", binary=binary,
            )  # fmt: skip
            if inserted is None:
                fresh = trades
            else:
                keys = {(m, t) for m, t in inserted}
                fresh = [t for t in trades if (t[0], t[1]) in keys]
        if rows.orders:
            # orders accepted in this batch are new (unless re-delivered): fast path;
            # the others (done/reduced of older orders) are merged into their rows
            new = sorted(
                (o for o in rows.orders.values() if o[ORDER_CREATED] is not None), key=_KEY1
            )
            old = [o for o in rows.orders.values() if o[ORDER_CREATED] is None]
            if new and not await _copy_new(conn, cur, "orders", ORDER_COLUMNS, new, binary):
                old += new
            if old:
                await _copy(cur, "_d_orders", ORDER_COLUMNS, old)
                await cur.execute(_ORDERS_UPSERT)
        for market in sorted(rows.markets.values()):
            await cur.execute(_MARKETS_UPSERT, market)
        if rows.market_events:
            events = sorted(rows.market_events, key=_KEY2)
            await _insert_new(
                conn, cur, "market_events", MARKET_EVENT_COLUMNS, events, "market, first_seq",
                binary=binary,
            )  # fmt: skip
        if rows.ledger:
            ledger = sorted(rows.ledger, key=lambda r: r[:5])
            await _insert_new(
                conn, cur, "ledger_entries", LEDGER_COLUMNS, ledger,
                "user_id, entry_ms, entry_seq, idx, leg",
            )  # fmt: skip
        if rows.deposits:
            deposits = sorted(rows.deposits, key=lambda r: str(r[0]))
            await cur.executemany(_DEPOSITS_INSERT, deposits)
        if rows.withdrawals:
            await cur.executemany(_WITHDRAWALS_UPSERT, _by_id_in_order(rows.withdrawals, 6))
        if rows.transfers:
            await cur.executemany(_TRANSFERS_UPSERT, _by_id_in_order(rows.transfers, 5))
        if rows.p2p_offers:
            await cur.executemany(_P2P_OFFERS_UPSERT, _latest(rows.p2p_offers))
        if rows.p2p_trades:
            await cur.executemany(_P2P_TRADES_UPSERT, _latest(rows.p2p_trades))
        if rows.p2p_messages:
            await cur.executemany(_P2P_MESSAGES_INSERT, sorted(rows.p2p_messages, key=_KEY2))
        if rows.notifications:
            await cur.executemany(_NOTIFICATIONS_INSERT, sorted(rows.notifications, key=_KEY1))
    if fresh:
        await candles.upsert(conn, candles.aggregate(map(_TICK, fresh)))
    return len(fresh)


def _latest(records: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The newest version (last column) of each record id (first column), by id."""
    best: dict[Any, tuple[Any, ...]] = {}
    for r in records:
        if r[0] not in best or r[-1] > best[r[0]][-1]:
            best[r[0]] = r
    return [best[k] for k in sorted(best)]


_KEY1 = operator.itemgetter(0)
_TICK = operator.itemgetter(0, 1, 2, 3, 4, 13)  # trade row -> candles.TradeTick
_KEY2 = operator.itemgetter(0, 1)


def _by_id_in_order(rows: list[tuple[Any, ...]], ts_col: int) -> list[tuple[Any, ...]]:
    """Sorted by id (lock order), events of one id by time (upserts applied in order)."""
    return sorted(rows, key=lambda r: (r[0], r[ts_col]))
