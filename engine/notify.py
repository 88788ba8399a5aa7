"""User notifications: a capped inbox per user, the durable record, a private push.

``notify`` runs ``ntf_push`` (lua/30_p2p.lua), which in one atomic call stores the
notification in ``{u:<user>}:inbox`` (a list in the user's account shard, newest
first, ``INBOX_CAP`` entries) and appends it as a ``notice`` event to the user's
account stream ``{u:<user>}:ev``, from which the drain writes it to PostgreSQL
(table ``notifications``, exactly once by id). It then PUBLISHes the PROTOCOL.md
push ``{"channel":"notifications","id","kind","message","ref","ts"}`` on
``hftx:u:<user>``, which web nodes forward to the user's sockets (with the
notification's ``id`` renamed ``notification_id``: pushes carry no ``id``). With a
``dedup`` key a notification is stored, recorded and published at most once
(retried jobs and replayed requests notify once).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import ResponseError

from engine.accounts import ACCOUNTS_KEY, account_keys, engine_error
from engine.ids import new_order_id
from engine.pubsub import publish
from engine.types import EngineError

INBOX_CAP = 500
DEDUP_TTL_MS = 7 * 86_400_000
MAX_MESSAGE_CHARS = 1000
MAX_DEDUP_CHARS = 200


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    kind: str
    message: str
    ref: str
    ts: int

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "message": self.message, "ref": self.ref,
                "ts": self.ts}  # fmt: skip


def channel(user: str) -> str:
    return f"hftx:u:{user}"


def _prefix(user: str) -> str:
    return account_keys(user)[0][:-3]


def _inbox_key(user: str) -> str:
    return _prefix(user) + "inbox"


def _push_args(user: str, note: Notification, dedup: str | None) -> list[Any]:
    """``ntf_push`` numkeys, KEYS and ARGV for ``note``."""
    p = _prefix(user)
    keys = [p + "inbox", p + "ev"]
    if dedup is not None:
        keys.append(f"{p}inbox:d:{dedup}")
    return [len(keys), *keys, note.id, note.kind, note.message, note.ref, note.ts, INBOX_CAP,
            DEDUP_TTL_MS]  # fmt: skip


def _reply(reply: Any) -> int:
    if isinstance(reply, ResponseError):
        raise engine_error(reply)
    if isinstance(reply, BaseException):
        raise reply
    return int(reply)


async def notify(
    redis: Any,
    user: str,
    kind: str,
    message: str,
    ref: str = "",
    *,
    dedup: str | None = None,
    now: int | None = None,
) -> Notification | None:
    """Store, record and push one notification; None when ``dedup`` was already used."""
    if not kind or len(kind.encode()) > 64 or len(ref.encode()) > 128:
        raise EngineError("INVALID_PARAM", "bad notification kind or ref")
    if dedup is not None and not 0 < len(dedup.encode()) <= MAX_DEDUP_CHARS:
        raise EngineError("INVALID_PARAM", "bad notification dedup key")
    note = Notification(
        new_order_id(), kind, message[:MAX_MESSAGE_CHARS], ref, now or time.time_ns() // 10**6
    )
    pipe = redis.pipeline(transaction=False)
    pipe.sadd(ACCOUNTS_KEY, user)  # the drain reads the streams of {g}:accounts
    pipe.fcall("ntf_push", *_push_args(user, note, dedup))
    _, stored = await pipe.execute(raise_on_error=False)
    if not _reply(stored):
        return None
    push = {"channel": "notifications", **note.to_wire()}
    await publish(redis, channel(user), orjson.dumps(push))
    return note


def _parse(raw: Any) -> Notification:
    n = orjson.loads(raw)
    return Notification(str(n["id"]), n["kind"], n["message"], n["ref"] or "", int(n["ts"]))


async def inbox(redis: Any, user: str, limit: int = 50) -> list[Notification]:
    """The user's latest notifications, newest first."""
    limit = max(1, min(int(limit), INBOX_CAP))
    return [_parse(raw) for raw in await redis.lrange(_inbox_key(user), 0, limit - 1)]


async def rebuild_inbox(
    redis: Any,
    user: str,
    notes: Iterable[Notification],
    dedups: Iterable[tuple[str, int]] = (),
    *,
    now: int | None = None,
) -> int:
    """Restore only: replace ``user``'s inbox with ``notes`` (oldest first), formatted
    by ``ntf_push`` itself, and set the dedup markers ``(key, ts)`` that have not
    expired. The account stream gets the notices again (the caller drops it)."""
    now = now or time.time_ns() // 10**6
    pipe = redis.pipeline(transaction=False)
    pipe.delete(_inbox_key(user))
    count = 0
    for note in notes:
        pipe.fcall("ntf_push", *_push_args(user, note, None))
        count += 1
    for key, ts in dedups:
        left = ts + DEDUP_TTL_MS - now
        if left > 0:
            pipe.set(f"{_inbox_key(user)}:d:{key}", "1", px=left, nx=True)
    for reply in await pipe.execute(raise_on_error=False):
        if isinstance(reply, BaseException):
            _reply(reply)
    return count
