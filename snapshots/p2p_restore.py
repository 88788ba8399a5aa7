"""P2P state after a snapshot, rebuilt from the records the drain keeps in PostgreSQL.

A P2P call cannot be re-issued from the record: the ledger keeps its balance events
(``escrow``, ``unescrow``, the ``transfer_out`` of a release; :mod:`snapshots.restore`
re-applies them with ``snap_apply``), while its record snapshots ``p2p_offer``,
``p2p_trade`` and ``p2p_msg`` only survive as the latest version of each record in
``p2p_offers`` / ``p2p_trades`` / ``p2p_messages``. So, after the balances:

1. every offer and trade of those tables is written back (``snap_p2p_put``) when
   it is newer than the snapshot's, and missing messages are appended
   (``snap_p2p_msgs``), formatted exactly as ``lua/30_p2p.lua`` formats them;
2. the indexes are derived from the records: the owner's offer list and both
   parties' trade lists, and in ``{g}`` the listing, offer owners, trade parties,
   payment deadlines (PENDING), disputes (DISPUTED) and buy-offer reservations;
3. a buy offer's reservations ``r:<trade id>`` are those of its open trades, plus,
   while its ``locked`` says more is reserved, reservations from the snapshot whose
   trade never opened and ended trades whose reservation was not settled yet, the
   most recent first (the sweep settles both, oldest first).

Not recoverable (not in any record): request-id idempotency keys and tombstones of
takes aborted after the snapshot. (Inboxes: :mod:`snapshots.inbox_restore`.)
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
import psycopg

from engine import p2p_keys as P
from engine.p2p_rules import ACTIVE

# (column of p2p_offers / p2p_trades, field of the Redis record)
OFFER_FIELDS = (
    ("id", "id"), ("user_id", "u"), ("side", "side"), ("asset", "asset"), ("fiat", "fiat"),
    ("status", "status"), ("price", "price"), ("min_amount", "min"), ("max_amount", "max"),
    ("amount", "amount"), ("locked", "locked"), ("filled", "filled"), ("window_min", "window"),
    ("methods", "methods"), ("created_ts", "cts"), ("updated_ts", "uts"), ("version", "v"),
)  # fmt: skip
TRADE_FIELDS = (
    ("id", "id"), ("offer_id", "offer"), ("offer_side", "oside"), ("seller", "seller"),
    ("buyer", "buyer"), ("asset", "asset"), ("fiat", "fiat"), ("status", "status"),
    ("last_action", "act"), ("price", "price"), ("amount", "amount"),
    ("fiat_amount", "fiat_amount"), ("window_min", "window"), ("methods", "methods"),
    ("expires_ts", "exp"), ("paid_ts", "paid_ts"), ("dispute_by", "dispute_by"),
    ("dispute_reason", "dispute_reason"), ("dispute_ts", "dispute_ts"),
    ("resolution", "resolution"), ("resolved_by", "resolved_by"), ("created_ts", "cts"),
    ("updated_ts", "uts"), ("version", "v"),
)  # fmt: skip


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _record(row: tuple[Any, ...], fields: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    return {name: value for (_, name), value in zip(fields, row, strict=True)}


async def _rows(conn: psycopg.AsyncConnection[Any], table: str, fields: Any) -> list[Any]:
    cols = ", ".join(c for c, _ in fields)
    cur = await conn.execute(f"SELECT {cols} FROM {table} ORDER BY created_ts, id")
    return [_record(r, fields) for r in await cur.fetchall()]


async def _current(redis: Any, key: str) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in (await redis.hgetall(key)).items()}


def choose_reservations(
    locked: int, required: list[tuple[str, int]], optional: list[tuple[str, int]]
) -> tuple[list[str], int]:
    """Reservation ids of a buy offer (pure): every ``required`` one (open trades),
    then ``optional`` ones in order while they fit in ``locked``; (ids, unexplained
    remainder, 0 when the reservations add up to ``locked``)."""
    chosen = [tid for tid, _ in required]
    left = locked - sum(a for _, a in required)
    for tid, amount in optional:
        if 0 < amount <= left:
            chosen.append(tid)
            left -= amount
    return chosen, left


async def restore_p2p(redis: Any, conn: psycopg.AsyncConnection[Any]) -> list[str]:
    """Write back P2P records newer than the snapshot's and rebuild their indexes;
    returns warnings (buy offers whose reservations could not be accounted for)."""
    offers = await _rows(conn, "p2p_offers", OFFER_FIELDS)
    trades = await _rows(conn, "p2p_trades", TRADE_FIELDS)
    for o in offers:
        await redis.fcall("snap_p2p_put", 1, P.offer_key(o["u"], o["id"]), "offer",
                          orjson.dumps(o))  # fmt: skip
    for t in trades:
        await redis.fcall("snap_p2p_put", 1, P.trade_key(t["seller"], t["id"]), "trade",
                          orjson.dumps(t))  # fmt: skip
    await _messages(redis, conn, {t["id"]: t["seller"] for t in trades})
    by_offer: dict[str, list[dict[str, str]]] = defaultdict(list)
    for t in trades:
        rec = await _current(redis, P.trade_key(t["seller"], t["id"]))
        by_offer[rec["offer"]].append(rec)
        await _index_trade(redis, rec)
    warnings = []
    for o in offers:
        rec = await _current(redis, P.offer_key(o["u"], o["id"]))
        await _index_offer(redis, rec)
        if rec["side"] == "buy":
            left = await _reservations(redis, rec, by_offer.get(rec["id"], []))
            if left:
                warnings.append(f"buy offer {rec['id']}: {left} locked without a reservation")
    return warnings


async def _messages(
    redis: Any, conn: psycopg.AsyncConnection[Any], sellers: dict[str, str]
) -> None:
    cur = await conn.execute(
        "SELECT trade_id, n, sender, role, body, ts FROM p2p_messages ORDER BY trade_id, n"
    )
    threads: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for tid, n, sender, role, body, ts in await cur.fetchall():
        threads[tid].append({"n": n, "trade": tid, "from": sender, "role": role, "ts": ts,
                             "body": body})  # fmt: skip
    for tid, msgs in threads.items():
        if tid in sellers:
            key = f"{P.prefix(sellers[tid])}p2p:m:{tid}"
            await redis.fcall("snap_p2p_msgs", 1, key, orjson.dumps(msgs))


async def _index_offer(redis: Any, o: dict[str, str]) -> None:
    pipe = redis.pipeline(transaction=False)
    pipe.zadd(P.prefix(o["u"]) + "p2p:ol", {o["id"]: int(o["cts"])})
    pipe.hset(P.OFFER_OWNER, o["id"], o["u"])
    listing = f"{o['side']}|{o['asset']}|{o['fiat']}|{o['u']}|{o['id']}"
    if o["status"] == "CLOSED":
        pipe.zrem(P.OFFERS, listing)
    else:
        pipe.zadd(P.OFFERS, {listing: int(o["cts"])})
    await pipe.execute()


async def _index_trade(redis: Any, t: dict[str, str]) -> None:
    seller, buyer, tid = t["seller"], t["buyer"], t["id"]
    member = f"{seller}|{tid}"
    pipe = redis.pipeline(transaction=False)
    for user in (seller, buyer):
        pipe.zadd(P.prefix(user) + "p2p:tl", {f"{tid}|{seller}": int(t["cts"])})
    pipe.hset(P.TRADE_PARTIES, tid, f"{seller}|{buyer}")
    if t["status"] == "PENDING":
        pipe.zadd(P.EXPIRY, {member: int(t["exp"])})
    else:
        pipe.zrem(P.EXPIRY, member)
    if t["status"] == "DISPUTED":
        pipe.zadd(P.DISPUTES, {member: int(t["dispute_ts"])})
    else:
        pipe.zrem(P.DISPUTES, member)
    await pipe.execute()


async def _reservations(redis: Any, o: dict[str, str], trades: list[dict[str, str]]) -> int:
    """Set the buy offer's ``r:<trade id>`` fields and the ``{g}`` reservation index;
    returns the part of ``locked`` no reservation explains (0 normally)."""
    key = P.offer_key(o["u"], o["id"])
    known = {t["id"]: t for t in trades}
    old = {k[2:]: v for k, v in o.items() if k.startswith("r:")}
    values = {t["id"]: f"{t['amount']}|{t['seller']}|{t['price']}|{t['cts']}" for t in trades} | {
        tid: v for tid, v in old.items() if tid not in known
    }
    required = [(t["id"], int(t["amount"])) for t in trades if t["status"] in ACTIVE]
    # newest first: the sweep aborts reservations (and _after settles ended trades)
    # oldest first, so those still reserved are the most recent ones
    unopened = sorted(
        ((tid, int(v.split("|")[0])) for tid, v in old.items() if tid not in known),
        key=lambda x: -int(values[x[0]].split("|")[3]),
    )
    ended = sorted((t for t in trades if t["status"] not in ACTIVE), key=lambda t: -int(t["uts"]))
    chosen, left = choose_reservations(
        int(o["locked"]), required, unopened + [(t["id"], int(t["amount"])) for t in ended]
    )
    pipe = redis.pipeline(transaction=False)
    for tid in set(old) | set(known):
        _, seller, _, _ = values[tid].split("|")
        member = f"{o['u']}|{o['id']}|{tid}|{seller}"
        if tid in chosen:
            pipe.hset(key, "r:" + tid, values[tid])
            pipe.zadd(P.RESERVATIONS, {member: int(values[tid].split("|")[3])})
        else:
            pipe.hdel(key, "r:" + tid)
            pipe.zrem(P.RESERVATIONS, member)
    await pipe.execute()
    return left
