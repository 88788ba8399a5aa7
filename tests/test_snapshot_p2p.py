"""Restore with P2P, client order ids, withdrawals and transfers: a snapshot taken
while P2P trades are open, then every kind of P2P move, orders with client order
ids, a pending withdrawal and a transfer to an address made after the snapshot;
restore(snapshot + later events) equals the live state (canonical dump), and the
restored exchange carries on (P2P, client order ids, withdrawals, conservation)."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aredis

from engine import accounts, addresses
from engine.exchange import Exchange
from engine.ids import new_order_id
from engine.p2p import P2P, RESERVE_GRACE_MS, now_ms
from engine.types import EngineError, OrderRequest
from ops.bench.drain import ExchangeLoad
from snapshots import snapshot as S
from snapshots.restore import canonical_dump, restore
from tests.p2p_helpers import check_escrow, spec
from workers.drain import Drain, DrainConfig
from workers.reconciler import reconcile_holds
from workers.settler import Settler

COIN = 10**8
DAY_MS = 1_764_028_800_000


@pytest.fixture
async def target(valkey_url):
    """Database 2 of the session Valkey: an empty target for the restore."""
    client = aredis.Redis.from_url(valkey_url.rsplit("/", 1)[0] + "/2")
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


def differences(got: Any, want: Any, path: str = "") -> list[str]:
    """Where two dumps differ, one line per leaf (a readable failure)."""
    if isinstance(got, dict) and isinstance(want, dict):
        out = []
        for k in sorted(set(got) | set(want), key=str):
            if k not in got or k not in want:
                out.append(f"{path}/{k}: only {'restored' if k in got else 'live'}")
            else:
                out += differences(got[k], want[k], f"{path}/{k}")
        return out
    return [] if got == want else [f"{path}: restored {got!r:.300} != live {want!r:.300}"]


def drn(side: str, amount: int, **kw):
    return spec(side, amount, asset="DRN", price=100_00, min_amount=COIN // 10,
                max_amount=5 * COIN, **kw)  # fmt: skip


async def _orders_with_cids(ex: Exchange, users: list[str], tag: str) -> list[str]:
    """Resting orders with client order ids (one canceled by its id), and one that fills."""
    m, cids = "DRN-USD", []
    for i, u in enumerate(users):
        cid = f"{tag}-{i}"
        req = OrderRequest(m, "buy", "limit", 3 * 1_000, 9_000 * 1_000_000, client_order_id=cid)
        await ex.place_order(u, req)
        cids.append(cid)
    await ex.cancel_order(users[0], client_order_id=f"{tag}-0")
    ioc = OrderRequest(m, "sell", "limit", 1_000, 9_000 * 1_000_000, "IOC",
                       client_order_id=f"{tag}-ioc")  # fmt: skip
    await ex.place_order(users[-1], ioc)
    return cids


async def test_restore_with_p2p_cids_withdrawals_and_transfers_equals_live(
    redis_real, target, db_url, tmp_path, monkeypatch
):
    load = ExchangeLoad(redis_real, seed=11)
    await load.setup()
    await load.run(80)
    s, b, c, d = load.users
    desk = P2P(redis_real)
    # before the snapshot: offers, trades still open, a reservation, a thread
    sell = await desk.create_offer(s, drn("sell", 20 * COIN))
    t1 = await desk.take_offer(b, sell.id, COIN)
    await desk.post_message(b, t1.id, "sending / now")
    wanted = await desk.create_offer(c, drn("buy", 10 * COIN))
    t2 = await desk.take_offer(d, wanted.id, 2 * COIN)
    cids = await _orders_with_cids(load.ex, [b, c], "pre")
    await load.settle()
    # two takes of the buy offer cut off between its shards (reserved, never opened):
    # the sweep aborts the older one after the snapshot, the other stays reserved
    real = desk._fcall_bal

    async def lost_open(fn: str, *args: Any) -> Any:
        if fn == "p2p_open":
            raise ConnectionError("connection lost")
        return await real(fn, *args)

    monkeypatch.setattr(desk, "_fcall_bal", lost_open)
    for seller, age in ((s, RESERVE_GRACE_MS + 5_000), (b, 0)):
        with pytest.raises(ConnectionError):
            await desk.take_offer(seller, wanted.id, COIN // 2, now=now_ms() - age)
    monkeypatch.setattr(desk, "_fcall_bal", real)
    t0 = await desk.take_offer(d, sell.id, COIN)  # released, not credited at the snapshot
    await desk.mark_paid(d, t0.id)
    await desk.confirm_release(s, t0.id)
    info = await S.snapshot_day(redis_real, db_url, tmp_path, now_ms=DAY_MS)
    doc = S.load_file(tmp_path / info.path)

    # after it: every kind of P2P move
    assert len((await desk.sweep()).aborted) == 1
    await desk.mark_paid(b, t1.id)
    await desk.post_message(s, t1.id, 'got it "thanks" \u00e9')
    await desk.confirm_release(s, t1.id)
    await desk.mark_paid(c, t2.id)
    await desk.confirm_release(d, t2.id)  # buy offer: the reservation counts as filled
    t3 = await desk.take_offer(c, sell.id, COIN // 2)
    await desk.cancel_trade(c, t3.id)
    t4 = await desk.take_offer(d, sell.id, COIN)
    await desk.mark_paid(d, t4.id)
    await desk.open_dispute(s, t4.id, "no payment seen")
    await desk.resolve_dispute("ops-admin", t4.id, "refund")
    t5 = await desk.take_offer(b, wanted.id, COIN)  # stays PENDING (reservation, deadline)
    t6 = await desk.take_offer(c, sell.id, COIN)
    await desk.mark_paid(c, t6.id)
    await desk.open_dispute(c, t6.id, "seller silent")  # stays DISPUTED
    t7 = await desk.take_offer(d, sell.id, COIN)
    assert (await desk.expire_trade(t7.id, now=t7.expires_ts + 1)).outcome == "expired"
    other = await desk.create_offer(b, drn("sell", 3 * COIN, methods=("Wise", "SEPA/IBAN")))
    await desk.update_offer(b, other.id, _changes(amount=2 * COIN, status="PAUSED"))
    gone = await desk.create_offer(d, drn("sell", COIN))
    await desk.close_offer(d, gone.id)
    broke = "x11broke"  # a seller without funds: the take is refused and aborted
    with pytest.raises(EngineError):
        await desk.take_offer(broke, wanted.id, COIN)
    # orders with client order ids, a pending withdrawal, a transfer to a new address
    cids += await _orders_with_cids(load.ex, [c, d], "post")
    await load.ex.request_withdrawal(s, "wd-pending", "USD", 10**7, "ext0address")
    newcomer = "x11new"
    addr = await addresses.deposit_address(redis_real, newcomer, "USD")  # used: recorded
    await load.ex.transfer(c, "tr-new", "USD", 5 * 10**6, addr)
    await load.run(120)
    await load.settle()
    # a hold whose order never reached the market (the web node died in between)
    orphan = new_order_id()
    await accounts.hold(redis_real, newcomer, orphan, "DRN-USD", "USD", 10**6,
                        client_order_id="orphan")  # fmt: skip
    drain = Drain(
        redis_real, db_url, DrainConfig(claim_idle_ms=100, block_ms=10, trim_require=("x",))
    )
    await drain.catch_up(timeout_s=120)
    await drain.close()
    live = await canonical_dump(redis_real)
    assert live["accounts"][s]["p2p"] and live["globals"]["{g}:p2p:disputes"]
    assert {cid for u in (b, c, d) for cid in live["accounts"][u].get("cids", {})} >= set(cids)

    report = await restore(target, db_url, doc)
    assert report.account_entries > 0 and not report.warnings
    got = await canonical_dump(target)
    assert got == live, "\n".join(differences(got, live))

    # the restored exchange carries on
    again = P2P(target)
    await again.mark_paid(c, t5.id)  # c owns the buy offer, b sold
    await again.confirm_release(b, t5.id)
    await again.resolve_dispute("ops-admin", t6.id, "release")
    assert await again.disputes() == []
    swept = await again.sweep(now=now_ms() + RESERVE_GRACE_MS + 1)  # the cut take left
    assert len(swept.aborted) == 1 and (await again.get_offer(wanted.id)).locked == 0
    ex = await Exchange.connect(target)
    dup = OrderRequest("DRN-USD", "buy", "limit", 1_000, 9_000 * 1_000_000,
                       client_order_id="post-1")  # fmt: skip
    assert (await ex.place_order(d, dup)).duplicate
    assert (await ex.complete_withdrawal("wd-pending")).user == s
    await ex.transfer(d, "tr-again", "USD", 10**6, addr)
    await Settler(target, publish=False).drain()
    released = await reconcile_holds(target, min_age_ms=0)  # the restore listed its holder
    assert released.released == [(newcomer, orphan)]
    assert await accounts.client_order(target, newcomer, "orphan") is None
    for u in (*load.users, newcomer):
        await check_escrow(again, u)
    assert (await accounts.balance(target, newcomer, "USD")).available == 6 * 10**6
    await ex.close()


def _changes(**kw):
    from engine.p2p_rules import OfferChanges

    return OfferChanges(**kw)


def test_the_worker_runs_the_midnight_snapshot_at_00_utc():
    from workers import jobs

    (job,) = [c for c in jobs.CRON_JOBS if c.coroutine is S.midnight_snapshot]
    assert (job.hour, job.minute, job.second) == ({0}, {0}, {0})


def test_buy_offer_reservations_are_open_trades_then_what_locked_still_explains():
    from snapshots.p2p_restore import choose_reservations

    assert choose_reservations(5, [("a", 5)], [("b", 3)]) == (["a"], 0)
    # an ended trade whose reservation was not settled yet, then a too-large one
    assert choose_reservations(9, [("a", 5)], [("b", 3), ("c", 4), ("d", 1)]) == (
        ["a", "b", "d"],
        0,
    )
    assert choose_reservations(7, [("a", 5)], [("b", 3)]) == (["a"], 2)  # reported
