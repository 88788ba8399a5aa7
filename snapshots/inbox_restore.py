"""Notification inboxes after a snapshot, rebuilt from PostgreSQL.

Every notification ``ntf_push`` stored is also a ``notice`` event of the user's
account stream, which the drain writes to ``notifications`` with its stream entry.
Ordered by that entry, a user's rows are in the order of the live inbox (both were
written by the same atomic call), so the inbox is the latest ``INBOX_CAP`` rows,
re-pushed oldest first through ``ntf_push`` (same formatting). Inbox entries of the
snapshot that PostgreSQL does not know (stored before notices were recorded) are
kept after them, as the oldest. Dedup markers younger than their 7-day life are set
again (with what is left of it) from the rows' dedup keys.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import psycopg

from engine import notify
from engine.notify import Notification


async def notified_users(conn: psycopg.AsyncConnection[Any]) -> set[str]:
    rows = await (
        await conn.execute("SELECT DISTINCT user_id FROM notifications WHERE entry_ms IS NOT NULL")
    ).fetchall()
    return {r[0] for r in rows}


def merge(
    recorded: list[Notification], snapshot_inbox: list[Any], known: set[str]
) -> list[Notification]:
    """The inbox, newest first: ``recorded`` (newest first) then the snapshot's entries
    whose id is not in ``known`` (every id PostgreSQL has for the user), capped (pure)."""
    out = list(recorded)
    for raw in snapshot_inbox:
        n = orjson.loads(raw)
        if str(n["id"]) not in known:
            out.append(Notification(str(n["id"]), n["kind"], n["message"], n["ref"] or "",
                                    int(n["ts"])))  # fmt: skip
    return out[: notify.INBOX_CAP]


async def restore_inbox(
    redis: Any,
    conn: psycopg.AsyncConnection[Any],
    user: str,
    snapshot_inbox: list[Any],
    *,
    now: int | None = None,
) -> int:
    """Rebuild ``user``'s inbox and dedup markers; the number of notifications."""
    now = now or time.time_ns() // 10**6
    rows = await (
        await conn.execute(
            "SELECT id, kind, message, ref, ts FROM notifications WHERE user_id = %s"
            " AND entry_ms IS NOT NULL ORDER BY entry_ms DESC, entry_seq DESC LIMIT %s",
            (user, notify.INBOX_CAP),
        )
    ).fetchall()
    recorded = [Notification(str(i), k, m, r or "", ts) for i, k, m, r, ts in rows]
    known: set[str] = set()
    if snapshot_inbox:
        ids = [int(orjson.loads(raw)["id"]) for raw in snapshot_inbox]
        found = await (
            await conn.execute(
                "SELECT id FROM notifications WHERE user_id = %s AND id = ANY(%s)", (user, ids)
            )
        ).fetchall()
        known = {str(r[0]) for r in found}
    inbox = merge(recorded, snapshot_inbox, known)
    dedups = await (
        await conn.execute(
            "SELECT dedup_key, max(ts) FROM notifications WHERE user_id = %s"
            " AND dedup_key IS NOT NULL AND ts > %s GROUP BY dedup_key",
            (user, now - notify.DEDUP_TTL_MS),
        )
    ).fetchall()
    if not inbox and not dedups:
        return 0
    return await notify.rebuild_inbox(redis, user, reversed(inbox), dedups, now=now)
