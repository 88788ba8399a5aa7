"""``canonical_dump``: the state that matters, normalized, to compare two Redis
instances (a live exchange and its restore).

Included: assets, markets, addresses, withdrawal owners; every market's config,
book, levels, depth, open orders and client order id index; every account's
non-zero balances, hold records, client order id index and idempotency records
(deposits, withdrawals, transfers); P2P offers, trades and threads, the users'
offer and trade lists and the ``{g}`` P2P indexes; each notification inbox (entries
parsed: the JSON's escaping is not state) and the names of its dedup markers.

Left out: streams, settlement cursors, leases, caches (records of finished
orders), TTLs, P2P request-id records, and tombstones of aborted takes with the
index entries that name them (none of these is recorded anywhere a restore could
read them back).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from engine import p2p_keys as P
from snapshots.snapshot import decode_dump

GLOBAL_KEYS = ("{g}:assets", "{g}:markets", "{g}:addr", "{g}:wd", "{g}:dep", P.OFFERS,
               P.OFFER_OWNER, P.EXPIRY, P.DISPUTES, P.RESERVATIONS)  # fmt: skip


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def _value(redis: Any, key: str) -> Any:
    kind = _text(await redis.type(key))
    if kind == "hash":
        return {_text(k): _text(v) for k, v in (await redis.hgetall(key)).items()}
    if kind == "zset":
        return [[_text(m), s] for m, s in await redis.zrange(key, 0, -1, withscores=True)]
    if kind == "list":
        return [_text(x) for x in await redis.lrange(key, 0, -1)]
    if kind == "string":
        return _text(await redis.get(key))
    return None


async def _tagged_keys(redis: Any, pattern: str) -> dict[str, list[str]]:
    """Keys matching ``pattern`` grouped by the id inside their hash tag."""
    out: dict[str, list[str]] = defaultdict(list)
    async for raw in redis.scan_iter(match=pattern, count=2000):
        key = _text(raw)
        out[key[3 : key.index("}")]].append(key)
    return out


async def _account(redis: Any, user: str, keys: list[str], trades: set[str]) -> dict[str, Any]:
    prefix = f"{{u:{user}}}:"
    acc: dict[str, Any] = {}
    bal = await _value(redis, prefix + "bal") or {}
    acc["bal"] = {f: int(v) for f, v in bal.items() if int(v)}
    holds = await _value(redis, prefix + "holds") or {}
    acc["holds"] = {oid: rec for oid, rec in holds.items() if int(rec.split("|")[2])}
    acc["ops"] = await _value(redis, prefix + "ops") or {}
    p2p: dict[str, Any] = {}
    for key in sorted(keys):
        name = key[len(prefix) :]
        if name.startswith("c:"):
            acc.setdefault("cids", {})[name[2:]] = await _value(redis, key)
        elif name == "inbox":
            acc["inbox"] = [orjson.loads(x) for x in await _value(redis, key) or []]
        elif name.startswith("inbox:d:"):
            acc.setdefault("dedup", []).append(name[8:])
        elif name.startswith(("p2p:o:", "p2p:m:")) or name == "p2p:ol":
            p2p[name] = await _value(redis, key)
        elif name.startswith("p2p:t:"):
            rec = await _value(redis, key)
            if rec and rec.get("status") != "ABORTED":
                p2p[name] = rec
        elif name == "p2p:tl":
            members = await _value(redis, key)
            p2p[name] = [[m, s] for m, s in members if m in trades]
    if p2p:
        acc["p2p"] = p2p
    return {k: v for k, v in acc.items() if v}


async def canonical_dump(redis: Any) -> dict[str, Any]:
    """The normalized state (see the module docstring)."""
    out: dict[str, Any] = {"globals": {}, "markets": {}, "accounts": {}}
    _, g = decode_dump(await redis.fcall_ro("snap_keys", len(GLOBAL_KEYS), *GLOBAL_KEYS, ""))
    out["globals"] = {k: v[2] for k, v in g.items()}
    for m in sorted(_text(x) for x in await redis.smembers("{g}:markets")):
        _, keys = decode_dump(await redis.fcall_ro("snap_market", 1, f"{{m:{m}}}:cfg"))
        view: dict[str, Any] = {k: v[2] for k, v in keys.items()}
        async for raw in redis.scan_iter(match=f"{{m:{m}}}:c:*", count=2000):
            view[_text(raw)] = _text(await redis.get(raw))
        out["markets"][m] = view
    by_user = await _tagged_keys(redis, "{u:*")
    trades = set()  # "<trade id>|<seller>" of every trade that exists
    for user, names in by_user.items():
        for key in names:
            if ":p2p:t:" in key and _text(await redis.hget(key, "status")) != "ABORTED":
                trades.add(f"{key.rsplit(':', 1)[1]}|{user}")
    parties = await _value(redis, P.TRADE_PARTIES) or {}
    known = {t.split("|")[0] for t in trades}
    out["globals"][P.TRADE_PARTIES] = {t: v for t, v in parties.items() if t in known}
    for user in sorted(by_user):
        acc = await _account(redis, user, by_user[user], trades)
        if acc:
            out["accounts"][user] = acc
    return out
