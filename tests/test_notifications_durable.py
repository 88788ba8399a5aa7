"""Notifications in the durable record: ``ntf_push`` appends a ``notice`` event to the
user's account stream (atomic with the inbox), the drain writes it to
``notifications`` exactly once (replayed or cut before its XACK), the settler and
the ledger ignore it (balances and conservation unchanged, reconcile matches), and a
restore rebuilds every inbox (and live dedup marker) equal to the live one; ``GET
/notifications?before=`` pages on past the inbox from PostgreSQL."""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
import pytest
import redis.asyncio as aredis
from redis.exceptions import ResponseError

from engine import accounts, notify
from snapshots import snapshot as S
from snapshots.inbox_restore import merge
from snapshots.reconcile import reconcile
from snapshots.restore import canonical_dump, restore
from tests.p2p_helpers import COIN, new_desk, spec
from tests.test_p2p_api_support import Api
from workers import drain as drain_mod
from workers.drain import Drain, DrainConfig
from workers.rows import PoisonEntry, account_entry_rows
from workers.settler import Settler

pytest_plugins = ["tests.test_p2p_api_support"]

USERS = ["sam", "bea"]


def cfg(**kw: Any) -> DrainConfig:
    return DrainConfig(claim_idle_ms=100, block_ms=10, maintain_s=0.05, **kw)


async def catch_up(redis: Any, db_url: str, **kw: Any) -> int:
    d = Drain(redis, db_url, cfg(**kw))
    try:
        return await d.catch_up(timeout_s=30)
    finally:
        await d.close()


async def rows(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        return await (await conn.execute(sql, params)).fetchall()


async def recorded(db_url: str, user: str) -> list[notify.Notification]:
    """The user's drained notifications, newest first (inbox order)."""
    got = await rows(
        db_url,
        "SELECT id, kind, message, ref, ts FROM notifications WHERE user_id = %s"
        " ORDER BY entry_ms DESC, entry_seq DESC",
        user,
    )
    return [notify.Notification(str(i), k, m, r or "", ts) for i, k, m, r, ts in got]


@pytest.fixture
async def target(valkey_url):
    """Database 3 of the session Valkey: an empty target for the restore."""
    client = aredis.Redis.from_url(valkey_url.rsplit("/", 1)[0] + "/3")
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


# -- pure -----------------------------------------------------------------------------


def test_a_notice_is_a_notification_row_and_no_ledger_row():
    ev = {"e": "notice", "ts": 5, "id": "7311", "kind": "p2p.paid", "message": "m \u00e9",
          "ref": "", "dedup": "p2p:1:paid"}  # fmt: skip
    out = account_entry_rows("u1", "1700-2", {b"e": orjson.dumps([ev])})
    assert out.ledger == [] and len(out) == 1
    assert out.notifications == [(7311, "u1", "p2p.paid", "m \u00e9", None, 5, "p2p:1:paid",
                                  1700, 2)]  # fmt: skip
    for bad in ("x1", "", "\u00b2", str(2**63)):
        with pytest.raises(PoisonEntry):
            account_entry_rows("u1", "1700-2", {b"e": orjson.dumps([{**ev, "id": bad}])})


def test_inbox_merge_keeps_unrecorded_snapshot_entries_as_the_oldest():
    new = [notify.Notification(str(i), "k", f"m{i}", "", i) for i in (9, 8)]
    legacy = [orjson.dumps({"id": i, "kind": "k", "message": "old", "ref": "", "ts": 1})
              for i in ("8", "3")]  # fmt: skip
    assert [n.id for n in merge(new, legacy, {"8"})] == ["9", "8", "3"]
    many = [notify.Notification(str(i), "k", "m", "", i) for i in range(notify.INBOX_CAP)]
    assert len(merge(many, legacy, set())) == notify.INBOX_CAP


# -- Lua -------------------------------------------------------------------------------


async def test_ntf_push_refuses_bad_input_before_writing(redis):
    p = "{u:u1}:"
    good = ["7", "k", "msg", "", "5", "10", "1000"]
    cases = [
        ([p + "inbox", p + "ev"], ["07", *good[1:]]),  # not a canonical id
        ([p + "inbox", p + "ev"], [str(2**63), *good[1:]]),  # over int64
        ([p + "inbox", p + "ev"], [*good[:4], "1e3", *good[5:]]),  # ts
        ([p + "inbox", p + "ev"], [good[0], "", *good[2:]]),  # empty kind
        ([p + "inbox", p + "ev"], [*good[:2], "x" * 9000, *good[3:]]),  # message too long
        ([p + "inbox", "{u:u2}:ev"], good),  # another user's stream
        ([p + "inbox", p + "ev", "{u:u1}:other:d:x"], good),  # not a dedup key
    ]
    for keys, argv in cases:
        with pytest.raises(ResponseError, match="INVALID_PARAM"):
            await redis.fcall("ntf_push", len(keys), *keys, *argv)
    assert await redis.exists(p + "inbox", p + "ev", "{u:u2}:ev") == 0
    assert await redis.fcall("ntf_push", 3, p + "inbox", p + "ev", p + "inbox:d:x", *good) == 1
    assert await redis.fcall("ntf_push", 3, p + "inbox", p + "ev", p + "inbox:d:x", *good) == 0
    ((_, fields),) = await redis.xrange(p + "ev")
    assert orjson.loads(fields[b"e"]) == [{"e": "notice", "ts": 5, "id": "7", "kind": "k",
                                           "message": "msg", "ref": "", "dedup": "x"}]  # fmt: skip
    assert [n.to_wire() for n in await notify.inbox(redis, "u1")] == [
        {"id": "7", "kind": "k", "message": "msg", "ref": "", "ts": 5}
    ]


# -- with the drain, the settler and reconcile -------------------------------------------


async def test_p2p_notices_are_drained_once_and_change_no_balance(redis_real, db_url, monkeypatch):
    desk, ledger = await new_desk(redis_real, USERS)
    await ledger.fund("sam", "BTC", 2 * COIN)
    offer = await desk.create_offer("sam", spec("sell", COIN))
    trade = await desk.take_offer("bea", offer.id, COIN // 2)
    await desk.mark_paid("bea", trade.id)
    await desk.post_message("bea", trade.id, "sent / thanks")
    await desk.confirm_release("sam", trade.id)
    assert await notify.notify(redis_real, "sam", "test", "once", dedup="d1") is not None
    assert await notify.notify(redis_real, "sam", "test", "twice", dedup="d1") is None
    before = {u: await accounts.balances(redis_real, u) for u in USERS}
    # the settler reads sam's stream (the release's outbox, notices after it): only
    # the transfer is credited
    await Settler(redis_real, publish=False).drain()
    after = {u: await accounts.balances(redis_real, u) for u in USERS}
    assert after["sam"] == before["sam"]
    assert {b.asset: b.available for b in after["bea"]}["BTC"] == COIN // 2
    await ledger.check(desk)

    await catch_up(redis_real, db_url)
    inboxes = {u: await notify.inbox(redis_real, u, notify.INBOX_CAP) for u in USERS}
    assert len(inboxes["sam"]) >= 4 and len(inboxes["bea"]) >= 3
    for u in USERS:
        assert await recorded(db_url, u) == inboxes[u]
    assert await rows(db_url, "SELECT dedup_key FROM notifications WHERE message = 'once'") == [
        ("d1",)
    ]

    # cut between COMMIT and XACK: the next drain re-delivers, nothing is written twice
    await notify.notify(redis_real, "bea", "test", "late")
    real_ack = drain_mod.ack

    async def lost_ack(*args: Any) -> int:
        raise RuntimeError("killed before XACK")

    monkeypatch.setattr(drain_mod, "ack", lost_ack)
    with pytest.raises(RuntimeError):
        await catch_up(redis_real, db_url)
    monkeypatch.setattr(drain_mod, "ack", real_ack)
    await catch_up(redis_real, db_url)
    await catch_up(redis_real, db_url, group="drain2")  # a full replay from the start
    n = len(inboxes["sam"]) + len(inboxes["bea"]) + 1
    assert await rows(db_url, "SELECT count(*), count(DISTINCT id) FROM notifications") == [(n, n)]
    assert await recorded(db_url, "bea") == await notify.inbox(redis_real, "bea")
    assert await rows(db_url, "SELECT count(*) FROM ledger_entries WHERE event::text LIKE "
                      "'%%notice%%'") == [(0,)]  # fmt: skip

    rep = await reconcile(redis_real, db_url, wait_s=5)  # both streams end with a notice
    assert rep.ok, (rep.mismatches, rep.not_drained)
    assert rep.conserved, rep.conservation


# -- restore ---------------------------------------------------------------------------------


async def test_restore_rebuilds_every_inbox_equal_to_the_live_one(redis_real, target, db_url):
    _, ledger = await new_desk(redis_real, USERS)
    await ledger.fund("sam", "BTC", COIN)
    for i in range(3):
        await notify.notify(redis_real, "sam", "pre", f"before {i}", ref="r", dedup=f"pre{i}")
    legacy = {"id": "42", "kind": "old", "message": "from before notices were recorded",
              "ref": "", "ts": 1}  # fmt: skip
    await redis_real.rpush("{u:bea}:inbox", orjson.dumps(legacy))  # in no stream
    await notify.notify(redis_real, "bea", "pre", 'quote "me" / \u00e9')
    await catch_up(redis_real, db_url)
    doc = await S.take_snapshot(redis_real)
    # after the snapshot: more than an inbox holds, a newcomer, a deposit, dedup markers
    for i in range(notify.INBOX_CAP + 5):
        await notify.notify(redis_real, "sam", "post", f"after {i}")
    await ledger.fund("bea", "BTC", COIN)
    await notify.notify(redis_real, "bea", "post", "after", dedup="post1")
    await notify.notify(redis_real, "newcomer", "post", "hello", dedup="post2")
    await catch_up(redis_real, db_url)
    live = await canonical_dump(redis_real)
    assert len(live["accounts"]["sam"]["inbox"]) == notify.INBOX_CAP
    assert live["accounts"]["bea"]["inbox"][-1] == legacy
    assert live["accounts"]["newcomer"]["dedup"] == ["post2"]

    report = await restore(target, db_url, doc)
    assert not report.warnings and report.notifications == notify.INBOX_CAP + 3 + 1
    assert await canonical_dump(target) == live
    for u in (*USERS, "newcomer"):
        assert await notify.inbox(target, u, notify.INBOX_CAP) == await notify.inbox(
            redis_real, u, notify.INBOX_CAP
        )
    assert await target.exists("{u:sam}:ev", "{u:newcomer}:ev") == 0  # replay streams dropped
    # the restored exchange keeps notifying once per dedup key
    assert await notify.notify(target, "newcomer", "post", "hello", dedup="post2") is None
    assert await notify.notify(target, "sam", "pre", "before 0", dedup="pre0") is None
    assert await notify.notify(target, "sam", "new", "fresh") is not None


# -- HTTP paging ---------------------------------------------------------------------------


async def test_http_notifications_page_on_from_postgresql_past_the_inbox(api: Api) -> None:
    me, other = await api.user(), await api.user()
    for i in range(notify.INBOX_CAP + 7):
        await notify.notify(api.node.redis, me.id, "test", f"n{i}", ref=str(i))
    await notify.notify(api.node.redis, other.id, "test", "not yours")
    await catch_up(api.node.redis, api.node.db.url)
    first = await api.ok("GET", "/notifications?limit=200", me)
    pages = [first]
    while pages[-1]:
        before = pages[-1][-1]["id"]
        pages.append(await api.ok("GET", f"/notifications?limit=200&before={before}", me))
    seen = [n for page in pages for n in page]
    assert [len(p) for p in pages] == [200, 200, 107, 0]
    assert [n["message"] for n in seen] == [f"n{i}" for i in reversed(range(notify.INBOX_CAP + 7))]
    assert seen[:200] == first and set(seen[0]) == {"id", "kind", "message", "ref", "ts"}
    theirs = (await api.ok("GET", "/notifications", other))[0]["id"]
    for bad in (theirs, "1", "99999999999999999999", "x"):
        await api.refused(400, "INVALID_PARAM", "GET", f"/notifications?before={bad}", me)
