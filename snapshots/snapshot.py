"""The midnight (UTC) snapshot: every shard read atomically, stored in PostgreSQL
and as gzip JSON under ``<HFTX_DATA_DIR>/snapshots/``.

A snapshot is a JSON document::

    {"format": 1, "day": "2026-11-25", "taken_ms": ...,
     "globals":  {"keys": {key: [type, pttl_ms, content]}},
     "markets":  {"BTC-USD": {"seq": 1234, "keys": {...}}},
     "accounts": {"42": {"position": "1764028800000-3" | null, "keys": {...}}}}

Each market is read by one ``snap_market`` call (lua/40_snapshot.lua): config,
book, levels, depth and the record of every order on the book, with the market
``seq``; each account by one ``snap_keys`` call: balances, holds, cursors,
idempotency records (and other keys of its tag) with the last id of its stream
(``position``). Streams are not part of a snapshot: ``restore`` replays what came
after from PostgreSQL. Order records of finished orders (a 24 h cache) are left out.

Content: hash -> object, set -> sorted list, zset -> [[member, score], ...] in
order, string -> string, list -> list. ``pttl_ms`` is -1 without expiry.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import logging
import os
import secrets
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg

log = logging.getLogger("hftx.snapshots")

FORMAT = 1
MARKETS = "{g}:markets"
ACCOUNTS = "{g}:accounts"
LOCK = "{g}:snapshot:lock:"
ACCOUNT_KEYS = ("bal", "holds", "cur", "ops")
BOOK_KEYS = ("cfg", "bids", "asks", "lv:b", "lv:a", "d")
# keys never snapshotted: streams and their drain bookkeeping, leases, locks
_SKIP_SUFFIXES = (":ev", ":ev:dead", ":ev:fail", ":lease", ":stl:lease")


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def canonical_json(data: Any) -> bytes:
    """Sorted keys, no whitespace: the bytes the checksum is taken over."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def checksum(data: Any) -> str:
    return hashlib.sha256(canonical_json(data)).hexdigest()


def utc_day(ms: int | None = None) -> dt.date:
    ms = int(time.time() * 1000) if ms is None else ms
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).date()


# -- reading the shards -------------------------------------------------------------


def _tag(key: str) -> str | None:
    if not key.startswith("{"):
        return None
    end = key.find("}")
    return key[: end + 1] if end > 0 else None


def _skipped(key: str) -> bool:
    return key.endswith(_SKIP_SUFFIXES) or key.startswith(LOCK)


async def _keys_by_tag(redis: Any) -> dict[str, list[str]]:
    """Every key with a hash tag, grouped by tag (one SCAN pass over every primary)."""
    out: dict[str, list[str]] = defaultdict(list)
    async for raw in redis.scan_iter(match="{*", count=2000):  # every primary of a cluster
        key = _text(raw)
        tag = _tag(key)
        if tag is not None and not _skipped(key):
            out[tag].append(key)
    return out


def decode_dump(flat: list[Any]) -> tuple[str, dict[str, list[Any]]]:
    """A ``snap_keys`` / ``snap_market`` reply -> (first element, {key: [type, pttl, content]})."""
    head = _text(flat[0])
    keys: dict[str, list[Any]] = {}
    for i in range(1, len(flat), 4):
        key, kind, pttl, raw = _text(flat[i]), _text(flat[i + 1]), int(flat[i + 2]), flat[i + 3]
        content: Any
        if kind == "hash":
            content = {_text(raw[j]): _text(raw[j + 1]) for j in range(0, len(raw), 2)}
        elif kind == "set":
            content = sorted(_text(m) for m in raw)
        elif kind == "zset":
            content = [[_text(raw[j]), _text(raw[j + 1])] for j in range(0, len(raw), 2)]
        elif kind == "string":
            content = _text(raw[0])
        else:
            content = [_text(x) for x in raw]
        keys[key] = [kind, pttl, content]
    return head, keys


async def read_market(
    redis: Any, market: str, extra: Sequence[str] = ()
) -> tuple[int, dict[str, Any]]:
    """(seq, keys) of one market, read atomically."""
    prefix = f"{{m:{market}}}:"
    reply = await redis.fcall_ro("snap_market", 1 + len(extra), prefix + "cfg", *extra)
    seq, keys = decode_dump(reply)
    return int(seq or 0), keys


async def read_account(
    redis: Any, user: str, extra: Sequence[str] = ()
) -> tuple[str | None, dict[str, Any]]:
    """(last stream entry id, keys) of one account, read atomically."""
    prefix = f"{{u:{user}}}:"
    names = [prefix + k for k in ACCOUNT_KEYS]
    names += [k for k in extra if k not in names]
    names.append(prefix + "ev")
    reply = await redis.fcall_ro("snap_keys", len(names), *names, prefix + "ev")
    position, keys = decode_dump(reply)
    return position or None, keys


async def take_snapshot(redis: Any, now_ms: int | None = None) -> dict[str, Any]:
    """Read every shard (each atomically) into a snapshot document."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    by_tag = await _keys_by_tag(redis)
    markets = {_text(m) for m in await redis.smembers(MARKETS)}
    markets |= {t[3:-1] for t in by_tag if t.startswith("{m:")}
    accounts = {_text(u) for u in await redis.smembers(ACCOUNTS)}
    accounts |= {t[3:-1] for t in by_tag if t.startswith("{u:")}
    g_keys = sorted(by_tag.get("{g}", []))
    _, globals_ = decode_dump(await redis.fcall_ro("snap_keys", len(g_keys), *g_keys, ""))
    doc: dict[str, Any] = {
        "format": FORMAT,
        "day": utc_day(now_ms).isoformat(),
        "taken_ms": now_ms,
        "globals": {"keys": globals_},
        "markets": {},
        "accounts": {},
    }
    for m in sorted(markets):
        prefix = f"{{m:{m}}}:"
        book = {prefix + k for k in BOOK_KEYS}
        extra = sorted(
            k
            for k in by_tag.get(f"{{m:{m}}}", [])
            if k not in book and not k.startswith(prefix + "o:")
        )
        seq, keys = await read_market(redis, m, extra)
        if keys:
            doc["markets"][m] = {"seq": seq, "keys": keys}
    for u in sorted(accounts):
        position, keys = await read_account(redis, u, sorted(by_tag.get(f"{{u:{u}}}", [])))
        if keys or position:
            doc["accounts"][u] = {"position": position, "keys": keys}
    return doc


# -- storing ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    day: dt.date
    path: str | None  # relative to the data dir
    checksum: str
    created: bool  # False: the day already had a snapshot (nothing written)


def write_file(path: Path, doc: dict[str, Any]) -> None:
    """Write gzip JSON atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with gzip.open(tmp, "wb", compresslevel=6) as fh:
        fh.write(canonical_json(doc))
    os.replace(tmp, path)


def load_file(path: str | Path) -> dict[str, Any]:
    with gzip.open(path, "rb") as fh:
        doc: dict[str, Any] = orjson.loads(fh.read())
    return doc


async def existing(database_url: str, day: dt.date) -> SnapshotInfo | None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (
            await conn.execute("SELECT path, checksum FROM snapshots WHERE day = %s", (day,))
        ).fetchone()
    return SnapshotInfo(day, row[0], row[1], False) if row else None


async def snapshot_day(
    redis: Any, database_url: str, data_dir: Path, now_ms: int | None = None
) -> SnapshotInfo:
    """Take and store the snapshot of the UTC day of ``now_ms``, unless that day has
    one already (idempotent: the day is the primary key)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    day = utc_day(now_ms)
    found = await existing(database_url, day)
    if found is not None:
        return found
    doc = await take_snapshot(redis, now_ms)
    digest = checksum(doc)
    rel = f"snapshots/{day.isoformat()}.json.gz"
    final = data_dir / rel
    staged = final.with_name(f".{final.name}.{secrets.token_hex(4)}.staged")
    write_file(staged, doc)
    try:
        conn = await psycopg.AsyncConnection.connect(database_url)
        async with conn, conn.transaction():
            row = await (
                await conn.execute(
                    "INSERT INTO snapshots (day, path, checksum, payload)"
                    " VALUES (%s, %s, %s, %s::jsonb) ON CONFLICT (day) DO NOTHING"
                    " RETURNING day",
                    (day, rel, digest, canonical_json(doc).decode()),
                )
            ).fetchone()
            if row is None:  # another worker won the day
                return await existing(database_url, day) or SnapshotInfo(day, None, "", False)
            os.replace(staged, final)
    finally:
        staged.unlink(missing_ok=True)
    log.info("snapshot %s: %d markets, %d accounts -> %s", day, len(doc["markets"]),
             len(doc["accounts"]), final)  # fmt: skip
    return SnapshotInfo(day, rel, digest, True)


# -- the arq cron job -----------------------------------------------------------------


async def midnight_snapshot(ctx: dict[str, Any]) -> dict[str, Any]:
    """arq cron job (00:00 UTC): unique across workers by a Redis lock on the day,
    idempotent per day by the PostgreSQL primary key."""
    from ops.settings import get_settings

    settings = get_settings()
    redis = ctx["engine"]
    now_ms = int(time.time() * 1000)
    day = utc_day(now_ms).isoformat()
    token = secrets.token_hex(8)
    lock = LOCK + day
    if not await redis.set(lock, token, nx=True, px=30 * 60 * 1000):
        return {"day": day, "status": "locked"}
    try:
        info = await snapshot_day(redis, str(settings.database_url), settings.data_dir, now_ms)
    except BaseException:
        if _text(await redis.get(lock) or b"") == token:
            await redis.delete(lock)  # let a retry run
        raise
    return {"day": day, "status": "created" if info.created else "exists", "path": info.path}


def cron_jobs() -> list[Any]:
    """The arq cron entry: ``WorkerSettings.cron_jobs += snapshots.snapshot.cron_jobs()``."""
    from arq import cron

    return [cron(midnight_snapshot, hour={0}, minute={0}, second={0}, timeout=1800)]
