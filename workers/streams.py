"""Redis stream consumer-group helpers shared by stream workers.

Works on a single Redis and on Redis Cluster: every command touches one stream
(one hash tag), except the multi-stream XREADGROUP used on a single node.
Entries are returned as :class:`Entry` with ``str`` stream and id and the raw
field mapping (bytes keys/values unless the client decodes).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from engine.accounts import OUTBOX_KEY

MARKETS_SET = "{g}:markets"
ACCOUNTS_SET = "{g}:accounts"
DRAIN_GROUP = "drain"  # the consumer group of workers.drain


@dataclass(slots=True)
class Entry:
    stream: str
    id: str
    fields: Any  # dict, or the flat [name, value, ...] list of a raw reply


@dataclass(frozen=True, slots=True)
class GroupInfo:
    name: str
    pending: int
    last_delivered: str
    lag: int | None  # entries not yet delivered to the group (None: unknown)


def text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def id_str(ms: int, seq: int = 0) -> str:
    return f"{ms}-{seq}"


def dead_letter_key(stream: str) -> str:
    """Dead letters of ``stream`` (same hash tag, so same cluster slot)."""
    return stream + ":dead"


def failures_key(stream: str) -> str:
    """Hash entry id -> failed processing attempts, same hash tag as ``stream``."""
    return stream + ":fail"


def market_stream(market_id: str) -> str:
    return f"{{m:{market_id}}}:ev"


def account_stream(user_id: str) -> str:
    return f"{{u:{user_id}}}:ev"


def is_cluster(redis: Any) -> bool:
    return hasattr(redis, "get_primaries")


# -- discovery -----------------------------------------------------------------


async def discover(redis: Any, *, scan: bool = False) -> list[str]:
    """Market streams of ``{g}:markets`` and account streams of ``{g}:accounts``;
    with ``scan`` also every ``{m:*}:ev`` / ``{u:*}:ev`` stream found by SCAN on every
    primary (streams of accounts missing from the registry)."""
    markets = [market_stream(text(m)) for m in await redis.smembers(MARKETS_SET)]
    users = [text(u) for u in await redis.smembers(ACCOUNTS_SET)]
    streams = set(markets) | {account_stream(u) for u in users}
    if scan:  # a cluster client's scan_iter covers every primary
        for pattern in ("{u:*}:ev", "{m:*}:ev"):
            async for key in redis.scan_iter(match=pattern, count=1000, _type="stream"):
                streams.add(text(key))
    return sorted(streams)


async def market_count(redis: Any) -> int:
    """How many markets are registered: a change means a new market stream."""
    return int(await redis.scard(MARKETS_SET))


async def ensure_group(redis: Any, stream: str, group: str, start: str = "0") -> bool:
    """Create ``group`` on ``stream`` (and the stream) if missing; True if created."""
    try:
        await redis.xgroup_create(stream, group, id=start, mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise
    return True


# -- reading ---------------------------------------------------------------------


def _entries(reply: Any) -> list[Entry]:
    out: list[Entry] = []
    if not reply:
        return out
    items = reply.items() if isinstance(reply, dict) else reply  # RESP3 / RESP2
    for stream, messages in items:
        name = text(stream)
        first = messages[0] if messages else None
        if isinstance(first, list) and first and isinstance(first[0], list | tuple):
            messages = first  # redis-py's RESP3 shape: [[(id, fields), ...]]
        append = out.append
        for entry_id, fields in messages:
            if fields is not None:  # raw replies keep the flat [field, value, ...] list
                eid = entry_id.decode() if type(entry_id) is bytes else str(entry_id)
                append(Entry(name, eid, fields))
    return out


def raw_reader(redis: Any) -> Any:
    """A client sharing ``redis``'s connections whose XREADGROUP replies are not
    turned into dicts by redis-py (cheaper; :func:`read_group` takes both). The
    client itself on a cluster."""
    if is_cluster(redis) or not hasattr(redis, "connection_pool"):
        return redis
    import redis.asyncio as aredis

    def raw(response: Any, **_: Any) -> Any:
        return response

    reader = aredis.Redis(connection_pool=redis.connection_pool)
    reader.set_response_callback("XREADGROUP", raw)
    return reader


async def read_group(
    redis: Any,
    group: str,
    consumer: str,
    streams: list[str],
    count: int,
    block_ms: int | None,
) -> list[Entry]:
    """New entries (``>``) of ``streams`` for ``consumer``, up to ``count`` per stream.

    Blocks up to ``block_ms`` on a single node; on a cluster reads each stream
    without blocking (one slot per command) and the caller paces.
    """
    if not streams:
        return []
    if not is_cluster(redis):
        reply = await redis.xreadgroup(
            group, consumer, dict.fromkeys(streams, ">"), count=count, block=block_ms
        )
        return _entries(reply)
    pipe = redis.pipeline()
    for s in streams:
        pipe.xreadgroup(group, consumer, {s: ">"}, count=count)
    out: list[Entry] = []
    for reply in await pipe.execute():
        out += _entries(reply)
    return out


# -- pending entries, claims, dead letters --------------------------------------------


@dataclass(frozen=True, slots=True)
class Pending:
    id: str
    consumer: str
    idle_ms: int
    deliveries: int


async def pending_idle(
    redis: Any, stream: str, group: str, idle_ms: int, count: int = 100
) -> list[Pending]:
    """Pending entries of ``group`` idle for at least ``idle_ms`` (oldest first)."""
    rows = await redis.xpending_range(stream, group, "-", "+", count, idle=idle_ms)
    return [
        Pending(
            text(r["message_id"]),
            text(r["consumer"]),
            int(r["time_since_delivered"]),
            int(r["times_delivered"]),
        )
        for r in rows
    ]


async def claim(
    redis: Any, stream: str, group: str, consumer: str, idle_ms: int, ids: list[str]
) -> list[Entry]:
    """XCLAIM ``ids`` still idle for ``idle_ms``; entries deleted meanwhile are dropped."""
    if not ids:
        return []
    reply = await redis.xclaim(stream, group, consumer, idle_ms, ids)
    return [Entry(stream, text(i), f) for i, f in reply if f is not None]


async def touch(redis: Any, stream: str, group: str, consumer: str, ids: list[str]) -> None:
    """Reset the idle time of our own pending ``ids`` (no delivery count change),
    so that other consumers do not claim entries we are still working on."""
    if ids:
        await redis.xclaim(stream, group, consumer, 0, ids, justid=True)


async def ack(redis: Any, group: str, entries: Iterable[Entry]) -> int:
    """XACK ``entries`` (one command per stream, pipelined)."""
    by_stream: dict[str, list[str]] = {}
    for e in entries:
        by_stream.setdefault(e.stream, []).append(e.id)
    if not by_stream:
        return 0
    pipe = redis.pipeline(transaction=False)
    for stream, ids in by_stream.items():
        pipe.xack(stream, group, *ids)
    return sum(int(n) for n in await pipe.execute())


async def record_failure(redis: Any, stream: str, entry_id: str) -> int:
    """Count a failed processing attempt of an entry; the new count."""
    return int(await redis.hincrby(failures_key(stream), entry_id, 1))


async def failures(redis: Any, stream: str, ids: list[str]) -> list[int]:
    if not ids:
        return []
    values = await redis.hmget(failures_key(stream), ids)
    return [int(v) if v is not None else 0 for v in values]


async def clear_failures(redis: Any, stream: str, ids: list[str]) -> None:
    if ids:
        await redis.hdel(failures_key(stream), *ids)


async def park(redis: Any, stream: str, group: str, entry_id: str, reason: str) -> bool:
    """Move an entry to the dead-letter stream and acknowledge it.

    The dead-letter entry repeats the original fields plus ``_id`` (original id)
    and ``_reason``. XADD comes before XACK: a crash in between may park an entry
    twice, never lose it. Returns False if the entry no longer exists (only acked).
    """
    found = await redis.xrange(stream, entry_id, entry_id)
    if found:
        fields = dict(found[0][1])
        fields["_id"] = entry_id
        fields["_reason"] = reason[:500]
        await redis.xadd(dead_letter_key(stream), fields)
    await redis.xack(stream, group, entry_id)
    await redis.hdel(failures_key(stream), entry_id)
    return bool(found)


# -- group state, lag, trimming ------------------------------------------------------


async def groups(redis: Any, stream: str) -> list[GroupInfo]:
    try:
        rows = await redis.xinfo_groups(stream)
    except ResponseError:  # no such key
        return []
    return _group_infos(rows)


async def groups_many(redis: Any, stream_keys: list[str]) -> dict[str, list[GroupInfo]]:
    """XINFO GROUPS of many streams in one pipeline (missing streams: no groups)."""
    if not stream_keys:
        return {}
    pipe = redis.pipeline(transaction=False)
    for s in stream_keys:
        pipe.xinfo_groups(s)
    replies = await pipe.execute(raise_on_error=False)
    return {
        s: [] if isinstance(r, Exception) else _group_infos(r)
        for s, r in zip(stream_keys, replies, strict=True)
    }


def _group_infos(rows: Any) -> list[GroupInfo]:
    out = []
    for r in rows:
        lag = r.get("lag")
        out.append(
            GroupInfo(
                name=text(r["name"]),
                pending=int(r["pending"]),
                last_delivered=text(r["last-delivered-id"]),
                lag=int(lag) if lag is not None else None,
            )
        )
    return out


async def drained_through(redis: Any, stream: str, position: str, group: str = DRAIN_GROUP) -> bool:
    """True when ``group`` has acknowledged every entry of ``stream`` up to ``position``
    (delivered past it, none of those pending). The drain acknowledges an entry only
    after its rows are committed, so these entries are then all in PostgreSQL."""
    info = next((g for g in await groups(redis, stream) if g.name == group), None)
    if info is None or parse_id(info.last_delivered) < parse_id(position):
        return False
    if info.pending == 0:
        return True
    return not await redis.xpending_range(stream, group, min="-", max=position, count=1)


async def last_ids(redis: Any, stream_keys: list[str]) -> dict[str, str]:
    """The id of the newest entry of each stream that has one, in one pipeline."""
    if not stream_keys:
        return {}
    pipe = redis.pipeline(transaction=False)
    for s in stream_keys:
        pipe.xrevrange(s, count=1)
    replies = await pipe.execute(raise_on_error=False)
    return {
        s: text(r[0][0])
        for s, r in zip(stream_keys, replies, strict=True)
        if r and not isinstance(r, Exception)
    }


async def oldest_pending(redis: Any, stream: str, group: str) -> str | None:
    summary = await redis.xpending(stream, group)
    if not summary or not summary.get("pending"):
        return None
    return text(summary["min"])


def safe_trim_id(
    infos: list[GroupInfo],
    oldest_pending_ids: dict[str, str | None],
    required: Iterable[str],
    keep_after: str,
) -> str | None:
    """The MINID below which every entry is acknowledged by every group (pure).

    ``oldest_pending_ids`` maps group -> its oldest pending id (None if none).
    Entries at or after ``keep_after`` are always kept (retention for plain
    XREAD readers). None when some required group is missing: trim nothing.
    """
    names = {g.name for g in infos}
    if not infos or any(r not in names for r in required):
        return None
    bound = parse_id(keep_after)
    for g in infos:
        # a group has acknowledged everything before its oldest pending entry,
        # and everything up to its last delivered entry when nothing is pending
        p = oldest_pending_ids.get(g.name)
        limit = parse_id(p) if p is not None else parse_id(g.last_delivered)
        bound = min(bound, limit)
    if bound <= (0, 0):
        return None
    return id_str(*bound)


def tag_of(stream: str) -> str:
    """``{m:X}:ev`` -> ``{m:X}``."""
    return stream[: stream.index("}") + 1]


SETTLER_POSITION = ":stl"  # suffix of the settler's read position of a stream


def settler_position_key(stream: str) -> str:
    """``{m:X}:ev`` -> ``{m:X}:stl``: the last entry the settler has applied."""
    return tag_of(stream) + SETTLER_POSITION


async def _settler_owes(redis: Any, stream: str) -> bool:
    """Whether the settler may have to read ``stream``: a market stream always; an
    account stream when its user is in the outbox index (may have uncredited transfers)."""
    if not stream.startswith("{u:"):
        return True
    return await redis.zscore(OUTBOX_KEY, stream[3 : stream.index("}")]) is not None


async def trim(
    redis: Any,
    stream: str,
    required: Iterable[str],
    keep_ms: int,
    positions: Iterable[str] = (),
) -> int:
    """XTRIM ``stream`` MINID to what every consumer group acknowledged; entries removed.

    ``positions`` are key suffixes (e.g. ``:stl``, the settler's read position
    ``{m:X}:stl``) of string keys in the stream's hash tag holding the last entry id
    a group-less reader processed; they bound the trim too, and a missing one
    means "not started": nothing is trimmed. Except the settler's on an account
    stream: the settler reads ``{u:U}:ev`` only for the transfers U sends, so a user
    who never paid anyone has no position there, and nothing for the settler to
    read unless U is in the outbox index (announced before the transfer is written).
    """
    infos = await groups(redis, stream)
    pend = {}
    for g in infos:
        pend[g.name] = await oldest_pending(redis, stream, g.name) if g.pending else None
    bound = id_str(int(time.time() * 1000) - keep_ms)
    for suffix in positions:
        pos = await redis.get(tag_of(stream) + suffix)
        if pos is None:
            if suffix == SETTLER_POSITION and not await _settler_owes(redis, stream):
                continue
            return 0
        if parse_id(text(pos)) < parse_id(bound):
            bound = text(pos)
    minid = safe_trim_id(infos, pend, required, bound)
    if minid is None:
        return 0
    return int(await redis.xtrim(stream, minid=minid, approximate=False))


async def lag(redis: Any, stream: str, group: str) -> tuple[int, int | None]:
    """(entries not yet acknowledged by ``group``, ms id-time of the oldest of them)."""
    infos = [g for g in await groups(redis, stream) if g.name == group]
    if not infos:
        n = int(await redis.xlen(stream))
        first = await redis.xrange(stream, count=1) if n else []
        return n, parse_id(text(first[0][0]))[0] if first else None
    g = infos[0]
    count = g.pending + (g.lag or 0)
    oldest: int | None = None
    if g.pending:
        p = await oldest_pending(redis, stream, group)
        oldest = parse_id(p)[0] if p else None
    if oldest is None and g.lag:
        after = await redis.xrange(stream, min="(" + g.last_delivered, count=1)
        oldest = parse_id(text(after[0][0]))[0] if after else None
    return count, oldest
