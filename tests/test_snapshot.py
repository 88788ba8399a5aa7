"""Midnight snapshot and restore: idempotent per day; restore(snapshot + later
events) rebuilds the live state exactly (canonical dump)."""

from __future__ import annotations

import psycopg
import pytest
import redis.asyncio as aredis

from engine import accounts, addresses
from engine.exchange import Exchange
from engine.types import OrderRequest
from engine.units import notional
from ops.bench.drain import ExchangeLoad
from snapshots import snapshot as S
from snapshots.restore import RestoreError, canonical_dump, restore
from workers.drain import Drain, DrainConfig
from workers.settler import Settler

DAY_MS = 1_764_028_800_000  # 2025-11-25T00:00:00Z


@pytest.fixture
async def other_db(valkey_url):
    """Database 1 of the session Valkey: an empty target for restores."""
    client = aredis.Redis.from_url(valkey_url.rsplit("/", 1)[0] + "/1")
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


async def drain_all(redis, db_url: str) -> None:
    d = Drain(redis, db_url, DrainConfig(claim_idle_ms=100, block_ms=10, trim_require=("x",)))
    await d.catch_up(timeout_s=120)
    await d.close()


async def count(db_url: str, sql: str) -> int:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        return (await (await conn.execute(sql)).fetchone())[0]


async def test_snapshot_twice_on_a_day_adds_nothing(redis_real, db_url, tmp_path):
    load = ExchangeLoad(redis_real, seed=3)
    await load.setup()
    await load.run(60)
    first = await S.snapshot_day(redis_real, db_url, tmp_path, now_ms=DAY_MS + 5)
    assert first.created and first.path == "snapshots/2025-11-25.json.gz"
    file = tmp_path / first.path
    before = file.read_bytes()
    await load.run(30)  # the state changes, the day's snapshot does not
    again = await S.snapshot_day(redis_real, db_url, tmp_path, now_ms=DAY_MS + 60_000)
    assert not again.created and again.checksum == first.checksum
    assert file.read_bytes() == before
    assert await count(db_url, "SELECT count(*) FROM snapshots") == 1
    doc = S.load_file(file)
    assert S.checksum(doc) == first.checksum
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        row = await (await conn.execute("SELECT payload FROM snapshots")).fetchone()
    assert row[0] == doc
    assert doc["day"] == "2025-11-25" and load.market.id in doc["markets"]
    assert set(load.users) <= set(doc["accounts"])
    assert sorted(f.name for f in (tmp_path / "snapshots").iterdir()) == ["2025-11-25.json.gz"]


async def test_midnight_job_is_unique_and_idempotent(redis_real, db_url, tmp_path, monkeypatch):
    from ops.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("HFTX_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        load = ExchangeLoad(redis_real, seed=4)
        await load.setup()
        ctx = {"engine": redis_real}
        first = await S.midnight_snapshot(ctx)
        assert first["status"] == "created"
        assert (await S.midnight_snapshot(ctx))["status"] == "locked"  # another worker
        await redis_real.delete(S.LOCK + first["day"])
        assert (await S.midnight_snapshot(ctx))["status"] == "exists"
        assert await count(db_url, "SELECT count(*) FROM snapshots") == 1
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize("settle_before_snapshot", [True, False])
async def test_restore_from_snapshot_and_later_events_equals_live(
    redis_real, other_db, db_url, tmp_path, settle_before_snapshot
):
    load = ExchangeLoad(redis_real, seed=8)
    await load.setup()
    await load.run(250)
    if settle_before_snapshot:
        await load.settle()
    info = await S.snapshot_day(redis_real, db_url, tmp_path, now_ms=DAY_MS)
    doc = S.load_file(tmp_path / info.path)
    await load.run(250)
    # a buy over more than 200 resting asks: matched over several engine calls, the
    # last one ending with `rested`; replayed the same way
    m, (seller, buyer) = load.market, ("deep-seller", "deep-buyer")
    for user, asset in ((seller, m.base), (buyer, m.quote)):
        address = await addresses.deposit_address(redis_real, user, asset)
        await load.ex.deposit(f"dep-{user}", address, asset, 10**12)
    high = 20_000 * m.tick
    for _ in range(210):
        await load.ex.place_order(seller, OrderRequest(m.id, "sell", "limit", m.lot, high))
    deep = await load.ex.place_order(
        buyer, OrderRequest(m.id, "buy", "limit", 100_000 * m.lot, high + 5 * m.tick)
    )
    assert deep.order.status == "PARTIALLY_FILLED" and deep.order.filled >= 210 * m.lot
    await load.settle()
    await drain_all(redis_real, db_url)
    hold = await accounts.hold_record(redis_real, buyer, deep.order.id)
    assert hold is not None and hold.amount == notional(
        m, high + 5 * m.tick, deep.order.amount - deep.order.filled
    )  # what it saved on every fill is released once it rests
    live = await canonical_dump(redis_real)
    assert live["markets"][load.market.id]["{m:DRN-USD}:bids"]  # a non-trivial book
    assert len(live["accounts"]) >= len(load.users)

    report = await restore(other_db, db_url, doc)
    assert report.market_entries > 0 and report.account_entries > 0
    assert await canonical_dump(other_db) == live
    # the restored exchange trades on where the live one stopped
    seq = report.markets[load.market.id]
    again = ExchangeLoad(other_db, seed=9)
    again.users = load.users
    again.ex = await Exchange.connect(other_db)
    again.settler = Settler(other_db, publish=False)
    again.addr = load.addr
    await again.run(40)
    await again.settle()
    events = await other_db.xrange(f"{{m:{load.market.id}}}:ev", count=1)
    assert int(events[0][1][b"f"]) == seq + 1
    with pytest.raises(RestoreError):
        await restore(other_db, db_url, doc)  # not empty any more


def test_replay_accepts_events_recorded_before_a_field_was_added() -> None:
    """History written by an older engine lacks ``mamount``: its replay matches."""
    from snapshots.restore import _without_later_fields

    recorded = [{"e": "trade", "tid": 1, "mfilled": 5}, {"e": "done", "id": "a"}]
    got = [{"e": "trade", "tid": 1, "mfilled": 5, "mamount": 9}, {"e": "done", "id": "a"}]
    assert _without_later_fields(got, recorded) == recorded
    newer = [{**recorded[0], "mamount": 9}, recorded[1]]
    assert _without_later_fields(got, newer) == got  # recorded with it: compared with it
    wrong = [{"e": "trade", "tid": 1, "mfilled": 6, "mamount": 9}, recorded[1]]
    assert _without_later_fields(wrong, recorded) != recorded  # other fields still count
