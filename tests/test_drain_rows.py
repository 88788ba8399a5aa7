"""Market entries -> rows: the batch converter merges orders exactly as merge_order
folds one event at a time; market_events rows reach PostgreSQL verbatim."""

from __future__ import annotations

import itertools
import random
from typing import Any

import orjson
import psycopg
import pytest

from workers.pgwrite import write_rows
from workers.rows import FINAL_STATUSES, Rows, market_entry_rows, merge_order


def random_log(rng: random.Random, orders: int) -> list[dict[str, Any]]:
    """Events of ``orders`` orders, interleaved, each order's in its own order:
    accepted, maybe reduced, maybe trades, maybe done (fields sometimes null/missing)."""
    lives: list[list[dict[str, Any]]] = []
    tid = 0
    for i in range(orders):
        oid, user, side = f"o{i}", f"u{rng.randint(1, 4)}", rng.choice(("buy", "sell"))
        amount = rng.randint(1, 9) * 1000
        life: list[dict[str, Any]] = [
            {"e": "accepted", "id": oid, "u": user, "cid": rng.choice(("", "c1")), "side": side,
             "type": "limit", "tif": rng.choice(("GTC", "IOC")), "po": rng.randint(0, 1),
             "price": 100 + i, "amount": amount, "qb": 0}
        ]  # fmt: skip
        if rng.random() < 0.5:
            life[0]["stp"] = "cancel_newest"
        for _ in range(rng.randint(0, 2)):
            life.append({"e": "level", "side": side, "price": 100 + i, "size": amount})
            if rng.random() < 0.4:
                amount -= 100
                life.append({"e": "reduced", "id": oid, "u": user, "side": side,
                             "price": 100 + i, "amount": amount, "filled": 0})  # fmt: skip
            if rng.random() < 0.5:
                tid += 1
                life.append({"e": "trade", "tid": tid, "price": 100 + i, "size": 10,
                             "quote": 1000 + i, "side": side, "maker": oid, "taker": "x",
                             "mu": user, "tu": "v", "mfee": 1, "tfee": 2})  # fmt: skip
        if rng.random() < 0.8:
            done = {"e": "done", "id": oid, "u": user, "side": side,
                    "reason": rng.choice(sorted(FINAL_STATUSES)),
                    "msg": rng.choice(("", "post only")), "filled": rng.choice((0, 10, None)),
                    "cost": rng.choice((0, 1000, None))}  # fmt: skip
            if rng.random() < 0.7:
                done["amount"] = amount
            life.append(done)
        lives.append(life)
    out: list[dict[str, Any]] = []
    while lives:
        life = rng.choice(lives)
        out.append(life.pop(0))
        if not life:
            lives.remove(life)
    for seq, ev in enumerate(out, start=1):
        ev["seq"], ev["ts"] = seq, 1_700_000_000_000 + seq
    return out


def entry(events: list[dict[str, Any]]) -> list[bytes]:
    """A raw stream entry as the engine writes it (flat field list)."""
    first, last = events[0]["seq"], events[-1]["seq"]
    return [b"f", str(first).encode(), b"l", str(last).encode(), b"e", orjson.dumps(events)]


@pytest.mark.parametrize("seed", range(12))
def test_batch_orders_equal_event_by_event_merge(seed):
    rng = random.Random(seed)
    log = random_log(rng, orders=rng.randint(1, 30))
    batch = Rows()
    i = 0
    while i < len(log):  # entries of 1..6 events into one accumulator
        n = rng.randint(1, 6)
        market_entry_rows("MKT", entry(log[i : i + n]), batch)
        i += n
    ref_orders: dict[str, list[Any]] = {}
    ref_trades = []
    for ev in log:  # every event alone, folded with merge_order
        one = market_entry_rows("MKT", entry([ev]))
        ref_trades += one.trades
        for oid, row in one.orders.items():
            ref_orders[oid] = merge_order(ref_orders[oid], row) if oid in ref_orders else row
    assert batch.orders == ref_orders
    assert batch.trades == ref_trades
    spans = [(r[1], r[2]) for r in batch.market_events]
    assert spans[0][0] == 1 and spans[-1][1] == len(log)
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(spans))


def test_entry_in_another_field_layout_converts_alike():
    log = random_log(random.Random(5), orders=6)
    raw = entry(log)
    as_dict = {raw[4]: raw[5], raw[0]: raw[1], raw[2]: raw[3]}  # e first, a dict
    a, b = market_entry_rows("MKT", raw), market_entry_rows("MKT", as_dict)
    assert (a.orders, a.trades, a.market_events) == (b.orders, b.trades, b.market_events)


@pytest.mark.parametrize("special", [False, True])
async def test_market_events_stored_verbatim(db_url, special):
    """Event texts, with or without characters COPY escapes, are stored as emitted."""
    from workers.pgwrite import prepare_connection

    msg = 'tab\\t back\\\\slash \\"q\\" é' if special else "plain é"
    rows = Rows()
    texts = []
    for seq in range(1, 30):
        ev = [{"e": "done", "seq": seq, "ts": 5, "id": f"o{seq}", "u": "u", "side": "buy",
               "reason": "CANCELED", "msg": "x", "filled": 0, "cost": 0}]  # fmt: skip
        raw = orjson.dumps(ev).replace(b'"x"', f'"{msg}"'.encode())
        texts.append(raw.decode())
        market_entry_rows(
            "M-1", [b"f", str(seq).encode(), b"l", str(seq).encode(), b"e", raw], rows
        )
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await prepare_connection(conn)
        async with conn.transaction():
            await write_rows(conn, rows)
        cur = await conn.execute("SELECT events::text FROM market_events ORDER BY first_seq")
        stored = [r[0] for r in await cur.fetchall()]
        cur = await conn.execute("SELECT reason FROM orders ORDER BY seq")
        reasons = [r[0] for r in await cur.fetchall()]
    assert stored == texts
    assert reasons == [orjson.loads(t)[0]["msg"] for t in texts]


def test_merged_batches_equal_one_batch():
    from workers.pgwrite import convert
    from workers.streams import Entry

    log = random_log(random.Random(9), orders=20)
    entries = [Entry("{m:MKT}:ev", f"1-{i}", entry(log[i : i + 2])) for i in range(0, len(log), 2)]
    entries.insert(3, Entry("{m:MKT}:ev", "0-9", [b"f", b"1", b"l", b"1", b"e", b"[{no"]))
    whole = convert(entries)
    for cut in (1, 4, len(entries) - 1):
        parts = convert(entries[:cut]).merged(convert(entries[cut:]))
        assert parts.good == whole.good and parts.bad == whole.bad
        assert parts.rows.orders == whole.rows.orders
        assert parts.rows.trades == whole.rows.trades
        assert parts.rows.market_events == whole.rows.market_events


async def _write(db_url: str, rows: Rows, query: str) -> Any:
    """Write ``rows`` in one transaction; the rows of ``query``, or the DataError."""
    from workers.pgwrite import prepare_connection

    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await prepare_connection(conn)
        try:
            async with conn.transaction():
                await write_rows(conn, rows)
        except psycopg.DataError as exc:
            return exc
        return await (await conn.execute(query)).fetchall()


GOOD_TRADE = ("M-1", 1, 5, 1, 5, "buy", "a", "b", "u1", "u2", 0, 0, 1, 5)


@pytest.mark.parametrize(
    ("column", "value", "stored"),
    [("price", "x", None), ("maker_fee", "7", 7), ("price", 1.5, None), ("price", 2**63, None),
     ("maker_user", 7, "7"), ("seq", "x", None)],
)  # fmt: skip
async def test_trade_value_of_another_type_is_judged_by_postgresql(db_url, column, value, stored):
    """trades are copied in binary, but a value not of its column's type sends the
    batch as text: PostgreSQL stores or refuses it as it always did (None: DataError)."""
    from workers.rows import TRADE_COLUMNS

    odd = [*GOOD_TRADE]
    odd[1] = 2  # another trade
    odd[TRADE_COLUMNS.index(column)] = value
    rows = Rows()
    rows.trades += [GOOD_TRADE, tuple(odd)]
    got = await _write(db_url, rows, f"SELECT {column} FROM trades ORDER BY trade_id")
    if stored is None:
        assert isinstance(got, psycopg.DataError)
    else:
        assert got == [(GOOD_TRADE[TRADE_COLUMNS.index(column)],), (stored,)]


@pytest.mark.parametrize(("ts", "stored"), [("5", 5), (1.5, None), (True, None), (2**63, None)])
async def test_market_entry_values_are_judged_as_before(db_url, ts, stored):
    """A market entry's odd values (here ts, in market_events and orders) are stored
    or refused as by a text COPY; a JSON true in a bigint column is refused, not taken
    as 1 (a batch with JSON booleans is copied as text)."""
    evs = [{"e": "accepted", "seq": 1, "ts": ts, "id": "o1", "u": "u1", "cid": "",
            "side": "buy", "type": "limit", "tif": "IOC", "po": 0, "price": 5, "amount": 1,
            "qb": 0}]  # fmt: skip
    rows = market_entry_rows("M-1", [b"f", b"1", b"l", b"1", b"e", orjson.dumps(evs)])
    got = await _write(
        db_url, rows, "SELECT (SELECT ts FROM market_events), (SELECT created_ts FROM orders)"
    )
    if stored is None:
        assert isinstance(got, psycopg.DataError)
    else:
        assert got == [(stored, stored)]


async def test_json_true_in_a_bigint_column_is_refused(db_url):
    evs = [{"e": "trade", "seq": 1, "ts": 5, "tid": 1, "price": 5, "size": 1, "quote": 5,
            "side": "buy", "maker": "o0", "taker": "o1", "mu": "u0", "tu": "u1", "mfee": True,
            "tfee": 0}]  # fmt: skip
    rows = market_entry_rows("M-1", [b"f", b"1", b"l", b"1", b"e", orjson.dumps(evs)])
    assert rows.json_booleans
    assert isinstance(await _write(db_url, rows, "SELECT 1"), psycopg.DataError)


async def test_market_events_row_out_of_range_is_a_data_error(db_url):
    rows = Rows()
    rows.market_events.append(("M-1", 2**63, 2**63, 5, "[]"))
    got = await _write(db_url, rows, "SELECT count(*) FROM market_events")
    assert isinstance(got, psycopg.DataError)


@pytest.mark.parametrize(
    ("field", "value"), [("price", "5"), ("size", "10"), ("quote", 1.5), ("ts", True), ("tid", "7")]
)
def test_a_trade_whose_candle_values_are_not_integers_is_poison(field, value):
    """Candles add and compare tid, price, size, quote and ts in Python: a numeric string
    (which PostgreSQL would store in a bigint) would make them wrong ("10" < "9") or
    fail the batch outside the database's checks, so the entry is poison (parked)."""
    from workers.rows import PoisonEntry

    ev = {"e": "trade", "seq": 1, "ts": 5, "tid": 1, "price": 5, "size": 1, "quote": 5,
          "side": "buy", "maker": "o0", "taker": "o1", "mu": "u0", "tu": "u1", "mfee": 0,
          "tfee": 0}  # fmt: skip
    assert market_entry_rows("M-1", entry([ev])).trades  # the integers convert
    ev[field] = value
    with pytest.raises(PoisonEntry, match="must be integers"):
        market_entry_rows("M-1", entry([ev]))
