"""Rebuild an empty Redis from a snapshot plus the events recorded after it.

1. The snapshot's keys are written back (globals, each market, each account).
2. Market events after the snapshot's ``seq`` (table ``market_events``) are
   replayed through the engine's own functions: each stream entry was one engine
   call, which is re-issued with the arguments its events carry (``accepted`` ->
   ``mkt_place``, a continuation -> ``mkt_continue``, ``done``/USER -> cancel,
   ``reduced`` -> ``mkt_reduce``, ``market`` -> ``mkt_configure``). The engine is
   deterministic, so the call must emit exactly the recorded events; any
   difference stops the restore.
3. Ledger events after each account's snapshot position (``ledger_entries``) are
   replayed the same way through the account functions (hold, release, deposit,
   withdrawals, transfers, and settlement/credits re-applied as ``acct_settle`` /
   ``acct_credit`` ops), each entry checked against the one recorded.
   A ``hold`` re-creates its client order id index entry (``cid`` in the event,
   with the expiry it had); a transfer's idempotency record keeps the outbox entry
   id of the original call. P2P entries (``escrow`` / ``unescrow`` and a release's
   ``transfer_out``) cannot be re-issued: ``snap_apply`` re-applies their balance
   legs, checked never to go below zero.
4. P2P records, threads and indexes are rebuilt from PostgreSQL
   (:mod:`snapshots.p2p_restore`); withdrawal owners and transfer addresses
   registered after the snapshot are registered again; each notification inbox is
   the latest notifications of ``notifications``, with the dedup markers still
   alive (:mod:`snapshots.inbox_restore`).
5. Streams written by the replay are deleted (their entries are already in
   PostgreSQL) and settlement cursors point at the restored market seqs.

:func:`canonical_dump` (:mod:`snapshots.dump`) gives a normalized view of the
state to compare two Redis instances.

Not covered: settlements and transfer credits the settler had not applied when
the record was cut (their source streams are gone); holds recorded before the
``hold`` event carried ``cid``; what :mod:`snapshots.p2p_restore` lists (P2P
request ids, aborted takes).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from redis.exceptions import ResponseError

from engine import addresses
from engine.accounts import HOLDERS_KEY, account_keys
from engine.functions import ensure_loaded
from snapshots.dump import canonical_dump
from snapshots.inbox_restore import notified_users, restore_inbox
from snapshots.p2p_restore import restore_p2p

__all__ = ["RestoreError", "RestoreReport", "canonical_dump", "restore"]

log = logging.getLogger("hftx.restore")

SETTLE_KINDS = frozenset({"fill", "fee", "release"})
P2P_BALANCE_KINDS = frozenset({"escrow", "unescrow"})  # the ledger part of a P2P call
CID_TTL_MS = 86_400_000  # lua/20_accounts.lua: a client order id is reserved 24 h


class RestoreError(RuntimeError):
    """The target is not empty, the record has a gap, or a replayed call diverged."""


@dataclass(slots=True)
class RestoreReport:
    markets: dict[str, int] = field(default_factory=dict)  # market -> restored seq
    market_entries: int = 0
    account_entries: int = 0
    notifications: int = 0  # notifications put back in inboxes
    warnings: list[str] = field(default_factory=list)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


# -- writing snapshot keys ----------------------------------------------------------------


async def write_keys(redis: Any, keys: dict[str, list[Any]]) -> None:
    """Write dumped keys back (each replaced), with their remaining TTL."""
    pipe = redis.pipeline(transaction=False)
    for key, (kind, pttl, content) in keys.items():
        pipe.delete(key)
        if kind == "hash":
            if content:
                pipe.hset(key, mapping=content)
        elif kind == "set":
            if content:
                pipe.sadd(key, *content)
        elif kind == "zset":
            if content:
                pipe.zadd(key, {m: float(s) for m, s in content})
        elif kind == "string":
            pipe.set(key, content)
        elif kind == "list" and content:
            pipe.rpush(key, *content)
        if pttl > 0:
            pipe.pexpire(key, pttl)
    await pipe.execute()


async def _check_empty(redis: Any) -> None:
    if await redis.dbsize():  # summed over the primaries on a cluster
        raise RestoreError("the target Redis is not empty (use force=True to overwrite)")


# -- markets --------------------------------------------------------------------------


def _stopped(order: dict[str, Any], events: list[dict[str, Any]]) -> bool:
    """Did the call leave ``order`` neither finished nor resting (max_fills reached)?"""
    oid = order["id"]
    if any(e["e"] == "done" and e["id"] == oid for e in events):
        return False
    if order["type"] == "limit" and order["tif"] == "GTC":
        rests = any(
            e["e"] == "level" and e["side"] == order["side"] and e["price"] == order["price"]
            for e in events
        )
        return not rests
    return True


def _trade_count(oid: str, events: list[dict[str, Any]]) -> int:
    return sum(1 for e in events if e["e"] == "trade" and e["taker"] == oid)


def market_call(
    events: list[dict[str, Any]], continuing: dict[str, dict[str, Any]]
) -> tuple[str, list[Any]]:
    """The engine call (function, ARGV after the cfg key) that produced ``events``.

    ``continuing`` maps order ids stopped at max_fills to their ``accepted`` event;
    it is updated."""
    first = events[0]
    kind, ts = first["e"], first["ts"]
    if kind == "market":
        args: list[Any] = [ts]
        for f in (
            "base",
            "quote",
            "bscale",
            "tick",
            "lot",
            "min",
            "maxn",
            "mfee",
            "tfee",
            "status",
        ):
            args += [f, first[f]]
        return "mkt_configure", args
    if kind == "accepted":
        o = first
        more = _stopped(o, events)
        if more:
            continuing[o["id"]] = o
        max_fills = _trade_count(o["id"], events) if more else ""
        return "mkt_place", [
            o["id"], o["u"], o["side"], o["type"], o["tif"], o["po"], o["price"], o["amount"],
            o["qb"], o.get("stp", "cancel_newest"), o["cid"], ts, max_fills,
        ]  # fmt: skip
    if kind == "reduced":
        return "mkt_reduce", [first["id"], first["u"], first["amount"], ts]
    if kind == "done" and first["msg"] == "USER":
        ids = [e["id"] for e in events if e["e"] == "done"]
        if len(ids) == 1:
            return "mkt_cancel", [ids[0], first["u"], ts]
        return "mkt_cancel_many", [first["u"], ts, *ids]
    involved = {e.get("taker") for e in events} | {e.get("id") for e in events}
    candidates = [oid for oid in continuing if oid in involved]
    if len(candidates) != 1:
        raise RestoreError(f"cannot tell which call emitted {events[:2]!r}")
    o = continuing.pop(candidates[0])
    if _stopped(o, events):
        continuing[o["id"]] = o
        return "mkt_continue", [o["id"], ts, _trade_count(o["id"], events)]
    return "mkt_continue", [o["id"], ts, ""]


def _reply_events(fn: str, reply: Any) -> list[Any]:
    if fn == "mkt_configure":
        raw = reply
    elif fn == "mkt_cancel_many":
        raw = reply[0]
    else:
        raw = reply[1]
    return list(orjson.loads(raw))


LATER_FIELDS = frozenset({"mamount"})  # event fields the engine added since the v1 events


def _without_later_fields(got: list[Any], recorded: list[Any]) -> list[Any]:
    """``got`` with the fields added to events later dropped where the recorded event
    (written by an older engine) lacks them: old history replays as it was recorded."""
    out = []
    for ev, rec in zip(got, recorded, strict=False):
        extra = LATER_FIELDS & ev.keys() - rec.keys() if isinstance(rec, dict) else set()
        out.append({k: v for k, v in ev.items() if k not in extra} if extra else ev)
    return out + got[len(out) :]


async def replay_market(
    redis: Any, conn: psycopg.AsyncConnection[Any], market: str, after_seq: int
) -> tuple[int, int]:
    """Replay ``market``'s recorded entries after ``after_seq``; (last seq, entries)."""
    cfg = f"{{m:{market}}}:cfg"
    continuing: dict[str, dict[str, Any]] = {}
    seq, count = after_seq, 0
    while True:
        rows = await (
            await conn.execute(
                "SELECT first_seq, last_seq, events FROM market_events"
                " WHERE market = %s AND first_seq > %s ORDER BY first_seq LIMIT 1000",
                (market, seq),
            )
        ).fetchall()
        if not rows:
            return seq, count
        for first, last, text in rows:
            events = orjson.loads(text)  # the entry's events, stored verbatim as text
            if first != seq + 1:
                raise RestoreError(f"{market}: events {seq + 1}..{first - 1} are not recorded")
            fn, args = market_call(events, continuing)
            reply = await redis.fcall(fn, 1, cfg, *args)
            got = _reply_events(fn, reply)
            if _without_later_fields(got, events) != events:
                raise RestoreError(f"{market} seq {first}: replay of {fn} diverged: {got!r}")
            if fn == "mkt_configure":
                await redis.sadd("{g}:markets", market)
            seq, count = last, count + 1


# -- accounts ----------------------------------------------------------------------------


async def _hold_amount(redis: Any, user: str, order_id: str) -> int:
    rec = await redis.hget(account_keys(user)[1], order_id)
    if rec is None:
        return 0
    return int(_text(rec).split("|")[2])


class _AccountReplay:
    """Re-issues one account's recorded entries through the account functions."""

    def __init__(self, redis: Any, conn: psycopg.AsyncConnection[Any], user: str) -> None:
        self.redis = redis
        self.conn = conn
        self.user = user
        self.keys = account_keys(user)
        self.markets: set[str] = set()

    async def call(self, events: list[dict[str, Any]], entry_id: str) -> None:
        """Re-issue the call that wrote entry ``entry_id`` (its ``events``) and check
        that it writes the same events."""
        kinds = {e["e"] for e in events}
        first = events[0]
        k, ts = first["e"], first["ts"]
        keys = self.keys
        if kinds & P2P_BALANCE_KINDS:
            fn, args = "snap_apply", [orjson.dumps(events), entry_id]
            keys = [self.keys[0], self.keys[3], self.keys[4]]
        elif kinds <= SETTLE_KINDS and not (k == "release" and first.get("reason") == "abort"):
            fn, args = "acct_settle", await self._settle_args(events)
        elif kinds == {"transfer_in"}:
            fn, args = "acct_credit", await self._credit_args(events)
        elif len(events) != 1:
            raise RestoreError(f"{self.user}: unexpected entry {events!r}")
        elif k == "hold":
            fn = "acct_hold"
            args = [first["id"], first["market"], first["asset"], first["amount"], ts,
                    first.get("cid", "")]  # fmt: skip
        elif k == "release":
            fn, args = "acct_release", [first["id"], ts]
        elif k == "deposit":
            fn = "acct_deposit"
            args = [first["id"], first["asset"], first["amount"], ts, first.get("address", "")]
        elif k == "withdraw_req":
            fn = "acct_withdraw_request"
            args = [first["id"], first["asset"], first["amount"], first["address"], ts]
        elif k == "withdraw_done":
            fn, args = "acct_withdraw_complete", [first["id"], ts]
        elif k == "withdraw_rejected":
            fn, args = "acct_withdraw_reject", [first["id"], ts]
        elif k == "transfer_out":
            fn = "acct_transfer_out"
            args = [first["id"], first["asset"], first["amount"], first["to"], ts]
        else:
            raise RestoreError(f"{self.user}: unknown ledger event {k!r}")
        try:
            await self.redis.fcall(fn, len(keys), *keys, *args)
        except ResponseError as exc:
            raise RestoreError(f"{self.user}: replay of {fn} refused: {exc}") from None
        last = await self.redis.xrevrange(self.keys[3], count=1)
        got = orjson.loads(last[0][1][b"e"]) if last else None
        if got != events:
            raise RestoreError(f"{self.user}: replay of {fn} diverged: {got!r} != {events!r}")
        if fn == "acct_hold" and first.get("cid"):
            # reserved 24 h from the original hold, not from the replay
            cid_key = f"{self.keys[0][:-3]}c:{first['cid']}"
            await self.redis.pexpireat(cid_key, ts + CID_TTL_MS)
        elif fn == "acct_transfer_out":
            await self._keep_outbox_id(first["id"], entry_id)

    async def _keep_outbox_id(self, transfer_id: str, entry_id: str) -> None:
        """The idempotency record names the original outbox entry, as it did live."""
        field = "t:" + transfer_id
        rec = _text(await self.redis.hget(self.keys[4], field)).split("|")
        rec[3] = entry_id
        await self.redis.hset(self.keys[4], field, "|".join(rec))

    async def _settle_args(self, events: list[dict[str, Any]]) -> list[Any]:
        """acct_settle ops rebuilt from the events the call wrote. Every op of the call
        gets the position cursor + 1: above what is applied, at or below the market
        seq reached (the cursors are set to the restored seqs afterwards)."""
        market = events[0]["market"]
        source = f"{{m:{market}}}:ev"
        self.markets.add(market)
        cur = await self.redis.hget(self.keys[2], source)
        pos = str(int(_text(cur)) + 1 if cur is not None else 1)
        taken: dict[str, int] = {}
        ops: list[list[Any]] = []
        for e in events:
            k, ts = e["e"], e["ts"]
            if k == "fill":
                taken[e["id"]] = taken.get(e["id"], 0) + e["paid"]
                ops.append(["t", pos, ts, e["id"], e["tid"], e["liq"], e["out"],
                            e["paid"], e["in"], e["got"], e["fee"]])  # fmt: skip
            elif k == "fee":
                ops.append(["f", pos, ts, e["tid"], e["asset"], e["amount"]])
            elif e["reason"] == "done":
                ops.append(["d", pos, ts, e["id"]])
            else:  # reduced: release down to what stays held
                left = await _hold_amount(self.redis, self.user, e["id"]) - taken.get(e["id"], 0)
                ops.append(["r", pos, ts, e["id"], left - e["amount"]])
                taken[e["id"]] = taken.get(e["id"], 0) + e["amount"]
        return [source, market, orjson.dumps(ops)]

    async def _credit_args(self, events: list[dict[str, Any]]) -> list[Any]:
        """acct_credit ops at the positions of the payer's outbox entries."""
        payer = events[0]["from"]
        ops = []
        for e in events:
            row = await (
                await self.conn.execute(
                    "SELECT entry_ms, entry_seq FROM ledger_entries WHERE user_id = %s"
                    " AND kind = 'transfer_out' AND ref = %s",
                    (payer, e["id"]),
                )
            ).fetchone()
            if row is None:
                raise RestoreError(f"{self.user}: credit {e['id']} without its transfer_out")
            ops.append(["c", f"{row[0]}-{row[1]}", e["ts"], payer, e["id"], e["asset"],
                        e["amount"]])  # fmt: skip
        return [f"{{u:{payer}}}:ev", "", orjson.dumps(ops)]


async def replay_account(
    redis: Any, conn: psycopg.AsyncConnection[Any], user: str, position: str | None
) -> tuple[int, set[str]]:
    """Replay ``user``'s ledger entries after ``position``; (entries, markets settled)."""
    ms, seq = (int(x) for x in position.split("-")) if position else (-1, -1)
    rows = await (
        await conn.execute(
            "SELECT entry_ms, entry_seq, event FROM ledger_entries WHERE user_id = %s"
            " AND leg = 0 AND (entry_ms, entry_seq) > (%s, %s) ORDER BY entry_ms, entry_seq, idx",
            (user, ms, seq),
        )
    ).fetchall()
    entries: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for e_ms, e_seq, event in rows:
        entries[(e_ms, e_seq)].append(event)
    replay = _AccountReplay(redis, conn, user)
    for key in sorted(entries):
        await replay.call(entries[key], f"{key[0]}-{key[1]}")
    return len(entries), replay.markets


async def _finish_account(redis: Any, user: str, seqs: dict[str, int], markets: set[str]) -> None:
    """Drop the replay's stream, cursor field and emptied holds; point the market
    cursors at the restored seqs; list an account left with holds in the holders
    index (an order that never reached its market is released by the reconciler)."""
    keys = account_keys(user)
    await redis.delete(keys[3])
    held = 0
    for oid, rec in (await redis.hgetall(keys[1])).items():
        if int(_text(rec).split("|")[2]) == 0:
            await redis.hdel(keys[1], oid)
        else:
            held += 1
    if held:
        await redis.zincrby(HOLDERS_KEY, 1, user)  # may over-report, by design
    cur = {_text(k) for k in await redis.hkeys(keys[2])}
    for m, s in seqs.items():
        stream = f"{{m:{m}}}:ev"
        if stream in cur or m in markets:
            await redis.hset(keys[2], stream, str(s))


async def _registrations(redis: Any, conn: psycopg.AsyncConnection[Any]) -> None:
    """Addresses and withdrawal owners registered after the snapshot: deposit
    addresses as recorded, transfer addresses derived again (they are deterministic),
    deposit and withdrawal ids -> their user."""
    deposits = await (
        await conn.execute("SELECT id, user_id, address, asset FROM deposits")
    ).fetchall()
    for deposit_id, user, address, asset in deposits:
        await redis.hsetnx("{g}:dep", deposit_id, user)
        if address:
            await redis.hsetnx("{g}:addr", address, f"{user}|{asset}")
    secret = addresses.address_secret()
    payees = await (
        await conn.execute(
            "SELECT DISTINCT to_user, asset FROM transfers WHERE to_user IS NOT NULL"
            " AND id NOT LIKE 'p2p:%'"
        )
    ).fetchall()
    for user, asset in payees:
        await redis.hsetnx("{g}:addr", addresses.derive(user, asset, secret), f"{user}|{asset}")
    for wid, user in await (await conn.execute("SELECT id, user_id FROM withdrawals")).fetchall():
        await redis.hsetnx("{g}:wd", wid, user)


async def restore(
    redis: Any, database_url: str, snapshot: dict[str, Any], *, force: bool = False
) -> RestoreReport:
    """Rebuild ``redis`` (empty unless ``force``) from ``snapshot`` + later events."""
    if not force:
        await _check_empty(redis)
    await ensure_loaded(redis)
    report = RestoreReport()
    await write_keys(redis, snapshot["globals"]["keys"])
    for m in snapshot["markets"].values():
        await write_keys(redis, m["keys"])
    for a in snapshot["accounts"].values():
        await write_keys(redis, a["keys"])
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        recorded = {r[0] for r in await (await conn.execute(
            "SELECT DISTINCT market FROM market_events")).fetchall()}  # fmt: skip
        for m in sorted(recorded | set(snapshot["markets"])):
            start = snapshot["markets"].get(m, {}).get("seq", 0)
            seq, n = await replay_market(redis, conn, m, start)
            report.markets[m] = seq
            report.market_entries += n
            await redis.delete(f"{{m:{m}}}:ev")
        users = {r[0] for r in await (await conn.execute(
            "SELECT DISTINCT user_id FROM ledger_entries")).fetchall()}  # fmt: skip
        users |= await notified_users(conn)
        for u in sorted(users | set(snapshot["accounts"])):
            snap = snapshot["accounts"].get(u, {})
            n, settled = await replay_account(redis, conn, u, snap.get("position"))
            report.account_entries += n
            inbox = snap.get("keys", {}).get(f"{{u:{u}}}:inbox", ["list", -1, []])[2]
            report.notifications += await restore_inbox(redis, conn, u, inbox)
            await _finish_account(redis, u, report.markets, settled)
            await redis.sadd("{g}:accounts", u)
        report.warnings += await restore_p2p(redis, conn)
        await _registrations(redis, conn)
    log.info("restored %d markets (%d entries replayed), %d account entries",
             len(report.markets), report.market_entries, report.account_entries)  # fmt: skip
    return report
