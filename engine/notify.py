"""User notifications: a capped inbox per user plus a private ``notifications`` push.

``notify`` stores the notification in ``{u:<user>}:inbox`` (a list in the user's
account shard, newest first, ``INBOX_CAP`` entries) and PUBLISHes the PROTOCOL.md
push ``{"channel":"notifications","id","kind","message","ref","ts"}`` on
``hftx:u:<user>``, which web nodes forward to the user's sockets (with the
notification's ``id`` renamed ``notification_id``: pushes carry no ``id``). With a
``dedup`` key a notification is stored and published at most once (retried jobs and
replayed requests notify once).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from engine.accounts import account_keys
from engine.ids import new_order_id
from engine.pubsub import publish
from engine.types import EngineError

INBOX_CAP = 500
DEDUP_TTL_MS = 7 * 86_400_000
MAX_MESSAGE_CHARS = 1000


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


def _inbox_key(user: str) -> str:
    return account_keys(user)[0][:-3] + "inbox"


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
    """Store and push one notification; None when ``dedup`` was already used."""
    inbox = _inbox_key(user)
    if not kind or len(kind) > 64 or len(ref) > 128:
        raise EngineError("INVALID_PARAM", "bad notification kind or ref")
    note = Notification(
        new_order_id(), kind, message[:MAX_MESSAGE_CHARS], ref, now or time.time_ns() // 10**6
    )
    keys = [inbox] if dedup is None else [inbox, f"{inbox}:d:{dedup}"]
    stored = await redis.fcall(
        "ntf_push", len(keys), *keys, orjson.dumps(note.to_wire()), INBOX_CAP, DEDUP_TTL_MS
    )
    if not int(stored):
        return None
    push = {"channel": "notifications", **note.to_wire()}
    await publish(redis, channel(user), orjson.dumps(push))
    return note


async def inbox(redis: Any, user: str, limit: int = 50) -> list[Notification]:
    """The user's latest notifications, newest first."""
    limit = max(1, min(int(limit), INBOX_CAP))
    rows = await redis.lrange(_inbox_key(user), 0, limit - 1)
    out = []
    for raw in rows:
        n = orjson.loads(raw)
        out.append(Notification(n["id"], n["kind"], n["message"], n["ref"], int(n["ts"])))
    return out
