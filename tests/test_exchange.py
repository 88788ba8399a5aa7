"""The engine facade end to end: hold + place, settlement, cancels, pushes."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from engine.exchange import Exchange, user_channel
from engine.types import EngineError, OrderRequest
from engine.units import parse_amount, parse_price, parse_size
from tests.engine_helpers import funded_exchange
from workers.settler import Settler

BTC = 10**8


@pytest.fixture
async def ex(redis):
    exchange = await funded_exchange(redis)
    yield exchange
    await exchange.close()


async def order(
    ex: Exchange, side: str, amount: str, price: str | None = None, **kw
) -> OrderRequest:
    m = await ex.market("BTC-USD")
    return OrderRequest(
        "BTC-USD",
        side,  # type: ignore[arg-type]
        "limit" if price else "market",
        parse_size(m, amount) if amount else 0,
        parse_price(m, price) if price else 0,
        **kw,
    )


async def balances(ex: Exchange, user: str) -> dict[str, tuple[int, int]]:
    return {b.asset: (b.available, b.held) for b in await ex.balances(user)}


async def settle(ex: Exchange) -> None:
    await Settler(ex.redis, instance="tests", publish=False).drain()  # one lease holder


async def test_trade_moves_money_exactly(ex):
    await ex.place_order("alice", await order(ex, "sell", "0.5", "30000.10"))
    result = await ex.place_order("bob", await order(ex, "buy", "0.2", "30001.00"))
    assert result.order.status == "FILLED"
    [fill] = result.fills
    assert (fill.price, fill.size, fill.fee_asset) == (3_000_010_000_000, 20_000_000, "BTC")
    await settle(ex)
    quote = 600_002_000_000  # 0.2 x 30000.10 USD in units
    maker_fee = -(-quote * 10 // 10_000)
    taker_fee = -(-20_000_000 * 20 // 10_000)
    assert await balances(ex, "alice") == {
        "BTC": (150_000_000, 30_000_000),
        "USD": (quote - maker_fee, 0),
    }
    # bob paid the maker's price: the price improvement was released with the hold
    assert await balances(ex, "bob") == {
        "BTC": (20_000_000 - taker_fee, 0),
        "USD": (100_000 * BTC - quote, 0),
    }
    assert await balances(ex, "fees") == {"BTC": (taker_fee, 0), "USD": (maker_fee, 0)}


async def test_insufficient_funds_changes_nothing(ex):
    before = await balances(ex, "bob")
    with pytest.raises(EngineError) as err:
        await ex.place_order("bob", await order(ex, "buy", "10", "30000.00"))
    assert err.value.code == "INSUFFICIENT_FUNDS"
    assert await balances(ex, "bob") == before
    assert (await ex.book("BTC-USD", 10)).bids == []


async def test_engine_refusal_releases_the_hold(ex):
    await ex.set_market_status("BTC-USD", "HALT")
    before = await balances(ex, "bob")
    with pytest.raises(EngineError) as err:
        await ex.place_order("bob", await order(ex, "buy", "0.1", "30000.00"))
    assert err.value.code == "MARKET_NOT_TRADING"
    assert await balances(ex, "bob") == before


async def test_post_only_rejection_is_an_error_and_releases(ex):
    await ex.place_order("alice", await order(ex, "sell", "0.5", "30000.00"))
    with pytest.raises(EngineError) as err:
        await ex.place_order("bob", await order(ex, "buy", "0.1", "30000.00", post_only=True))
    assert err.value.code == "POST_ONLY_WOULD_TAKE"
    await settle(ex)
    assert (await balances(ex, "bob"))["USD"] == (100_000 * BTC, 0)


async def test_duplicate_client_order_id_returns_the_existing_order(ex):
    first = await ex.place_order(
        "bob", await order(ex, "buy", "0.1", "29000.00", client_order_id="my-1")
    )
    again = await ex.place_order(
        "bob", await order(ex, "buy", "0.3", "28000.00", client_order_id="my-1")
    )
    assert (
        again.duplicate
        and again.order.id == first.order.id
        and again.order.amount == first.order.amount
    )
    assert len(await ex.open_orders("bob")) == 1


async def test_cancel_by_id_and_client_id_and_all(ex):
    a = await ex.place_order("bob", await order(ex, "buy", "0.1", "29000.00"))
    await ex.place_order("bob", await order(ex, "buy", "0.1", "29001.00", client_order_id="c-2"))
    await ex.place_order("bob", await order(ex, "buy", "0.1", "29002.00"))
    assert (await ex.cancel_order("bob", order_id=a.order.id)).status == "CANCELED"
    assert (await ex.cancel_order("bob", client_order_id="c-2")).status == "CANCELED"
    assert len(await ex.open_orders("bob")) == 1
    assert [o.status for o in await ex.cancel_all("bob")] == ["CANCELED"]
    await settle(ex)
    assert await balances(ex, "bob") == {"USD": (100_000 * BTC, 0)}


async def test_another_users_order_looks_unknown(ex):
    mine = await ex.place_order("alice", await order(ex, "sell", "0.1", "31000.00"))
    for call in (
        lambda: ex.cancel_order("bob", order_id=mine.order.id),
        lambda: ex.get_order("bob", mine.order.id),
        lambda: ex.get_order("bob", "12345"),
    ):
        with pytest.raises(EngineError) as err:
            await call()
        assert err.value.code == "UNKNOWN_ORDER"
    assert (await ex.get_order("alice", mine.order.id)).status == "NEW"


async def test_market_buy_by_amount_gets_a_budget(ex):
    await ex.place_order("alice", await order(ex, "sell", "0.1", "30000.00"))
    await ex.place_order("alice", await order(ex, "sell", "0.1", "30010.00"))
    result = await ex.place_order("bob", await order(ex, "buy", "0.15"))
    assert result.order.status == "FILLED" and result.order.filled == 15_000_000
    assert [f.price for f in result.fills] == [3_000_000_000_000, 3_001_000_000_000]
    await settle(ex)
    usd = (await balances(ex, "bob"))["USD"]
    m = await ex.market("BTC-USD")
    spent = parse_amount(8, "3000") + parse_amount(8, "1500.5")
    assert usd == (100_000 * BTC - spent, 0) and m.quote == "USD"


async def test_market_buy_by_amount_on_a_book_without_asks_expires(ex):
    """Like a market sell on a book without bids: placed, EXPIRED, nothing filled."""
    before = await balances(ex, "bob")
    buy = await ex.place_order("bob", await order(ex, "buy", "0.1"))
    sell = await ex.place_order("alice", await order(ex, "sell", "0.1"))
    for result in (buy, sell):
        assert (result.order.status, result.order.filled, result.fills) == ("EXPIRED", 0, [])
    await settle(ex)
    assert await balances(ex, "bob") == before


async def test_orders_pushes_reach_only_their_owner(ex):
    pubsub = ex.redis.pubsub()
    await pubsub.subscribe(user_channel("alice"), user_channel("bob"))
    await ex.place_order("alice", await order(ex, "sell", "0.5", "30000.00"))
    await ex.place_order("bob", await order(ex, "buy", "0.2", "30000.00"))
    await ex.close()
    got: dict[str, list[tuple[str, str]]] = {"alice": [], "bob": []}
    deadline = asyncio.get_running_loop().time() + 2
    while len(got["alice"]) + len(got["bob"]) < 4 and asyncio.get_running_loop().time() < deadline:
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if msg is None:
            continue
        push = orjson.loads(msg["data"])
        if push["channel"] != "orders":
            continue
        got[msg["channel"].decode().rsplit(":", 1)[1]].append(
            (push["exec_type"], push["order"]["status"])
        )
    await pubsub.aclose()
    assert got["alice"] == [("NEW", "NEW"), ("TRADE", "PARTIALLY_FILLED")]
    assert got["bob"] == [("NEW", "NEW"), ("TRADE", "FILLED")]


async def test_recent_trades_newest_first(ex):
    await ex.place_order("alice", await order(ex, "sell", "0.5", "30000.00"))
    for _ in range(3):
        await ex.place_order("bob", await order(ex, "buy", "0.1", "30000.00"))
        await asyncio.sleep(0)
    trades = await ex.recent_trades("BTC-USD", 2)
    assert [t["trade_id"] for t in trades] == [3, 2]
    assert trades[0]["price"] == "30000.00" and trades[0]["size"] == "0.10000"


async def test_stream_trades_read_a_bounded_part_unless_the_drain_is_behind(ex, monkeypatch):
    """The latest trades of a market whose last engine calls trade nothing: the stream is
    read for at most SCAN_ENTRIES entries when the drain recorded the ones before (the
    older trades are then in history), else further."""
    from api import marketdata

    monkeypatch.setattr(marketdata, "SCAN_ENTRIES", 10)
    await ex.place_order("alice", await order(ex, "sell", "0.5", "30000.00"))
    await ex.place_order("bob", await order(ex, "buy", "0.1", "30000.00"))  # trade 1
    for _ in range(25):  # engine calls that trade nothing
        await ex.place_order("bob", await order(ex, "buy", "0.0001", "1.00"))
    stream = "{m:BTC-USD}:ev"
    # no drain (or one behind the cut): the stream is read until the trades are found
    trades, cut = await marketdata.stream_trades(ex, ex.redis, "BTC-USD", 2)
    assert ([t["trade_id"] for t in trades], cut) == ([1], None)
    await ex.redis.xgroup_create(stream, "drain", id="0")
    trades, cut = await marketdata.stream_trades(ex, ex.redis, "BTC-USD", 2)
    assert ([t["trade_id"] for t in trades], cut) == ([1], None)
    # the drain recorded everything: ten entries are read, the rest is history's
    await ex.redis.xgroup_setid(stream, "drain", id="$")
    trades, cut = await marketdata.stream_trades(ex, ex.redis, "BTC-USD", 2)
    entries = await ex.redis.xrevrange(stream, count=10)
    assert (trades, cut) == ([], entries[-1][0].decode())
    rest = await ex.scan_trades("BTC-USD", 2, before=cut)
    assert ([t["trade_id"] for t in rest.trades], rest.cut) == ([1], None)


async def test_a_finished_order_is_found_in_one_round_trip_whatever_the_markets(ex, monkeypatch):
    """A finished order holds nothing that names its market: ``get_order`` looked in
    the markets one after the other, a round trip each (GET /orders/{id}, order.get)."""
    from engine import registry
    from ops.bench.markets import usd_market

    for i in range(30):
        await registry.create_asset(ex.redis, f"A{i}", 8)  # markets listed before BTC-USD
        await registry.create_market(ex.redis, usd_market(f"A{i}"), 1)
    await ex.place_order("alice", await order(ex, "sell", "0.5", "30000.00"))
    taker = await ex.place_order("bob", await order(ex, "buy", "0.1", "30000.00"))
    assert taker.order.status == "FILLED"
    await settle(ex)  # the taker's hold is gone
    calls = 0
    execute = ex.redis.execute_command

    async def counted(*args, **kwargs):
        nonlocal calls
        calls += 1
        return await execute(*args, **kwargs)

    monkeypatch.setattr(ex.redis, "execute_command", counted)
    found = await ex.get_order("bob", taker.order.id)
    assert (found.id, found.status) == (taker.order.id, "FILLED")
    assert calls <= 3, calls  # its hold (none), the markets, then one pipeline
    with pytest.raises(EngineError):
        await ex.get_order("alice", taker.order.id)  # another user's: unknown


async def test_reducing_a_partly_filled_order_releases_the_difference_at_once(ex):
    from engine import market as M
    from engine.exchange import now_ms

    bid = await ex.place_order("bob", await order(ex, "buy", "1", "30000.00"))
    await ex.place_order("alice", await order(ex, "sell", "0.25", "30000.00"))
    await M.reduce(ex.redis, "BTC-USD", bid.order.id, "bob", 50_000_000, now_ms())  # 0.5
    await settle(ex)
    # 0.25 bought for 7500 USD; 0.25 still to buy keeps 7500 held; 15000 came back
    assert (await balances(ex, "bob"))["USD"] == (100_000 * BTC - 15_000 * BTC, 7_500 * BTC)
    await ex.cancel_order("bob", order_id=bid.order.id)
    await settle(ex)
    assert (await balances(ex, "bob"))["USD"] == (100_000 * BTC - 7_500 * BTC, 0)


async def test_a_refused_order_pushes_its_hold_and_the_release(ex):
    pubsub = ex.redis.pubsub()
    await pubsub.subscribe(user_channel("bob"))
    m = await ex.market("BTC-USD")
    off_tick = OrderRequest("BTC-USD", "buy", "limit", 10 * m.lot, 30_000 * BTC + 1)
    with pytest.raises(EngineError) as err:  # refused by the engine, after the hold
        await ex.place_order("bob", off_tick)
    assert err.value.code == "BAD_PRECISION"
    await ex.flush()
    usd: list[tuple[str, str]] = []
    deadline = asyncio.get_running_loop().time() + 2
    while len(usd) < 2 and asyncio.get_running_loop().time() < deadline:
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if msg is not None and (push := orjson.loads(msg["data"]))["channel"] == "balances":
            usd.append((push["free"], push["locked"]))
    await pubsub.aclose()
    assert usd == [("99997.00000000", "3.00000000"), ("100000.00000000", "0.00000000")]


async def test_a_caller_cancelled_mid_place_still_gets_the_order_placed_and_pushed(ex, monkeypatch):
    from engine import market as M

    real_place, sent = M.place, asyncio.Event()

    async def place_slowly(*args, **kw):  # the command is on its way when the caller goes
        sent.set()
        await asyncio.sleep(0.05)
        return await real_place(*args, **kw)

    monkeypatch.setattr(M, "place", place_slowly)
    pubsub = ex.redis.pubsub()
    await pubsub.subscribe(user_channel("bob"))
    caller = asyncio.create_task(ex.place_order("bob", await order(ex, "buy", "0.1", "29000.00")))
    await sent.wait()
    caller.cancel()  # e.g. the request timed out
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.sleep(0.1)
    await ex.flush()
    [resting] = await ex.open_orders("bob")
    pushes: list[str] = []
    deadline = asyncio.get_running_loop().time() + 2
    while not pushes and asyncio.get_running_loop().time() < deadline:
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if msg is not None and (push := orjson.loads(msg["data"]))["channel"] == "orders":
            pushes.append(push["order"]["id"])
    await pubsub.aclose()
    assert pushes == [resting.id]


async def test_an_order_id_generated_twice_gets_a_new_one_and_moves_nothing_else(ex, monkeypatch):
    """Two processes with one node id can draw the same id: the second order is placed
    under a fresh id, neither order nor balance of the first owner changes, and the
    hold under the taken id is released (no funds locked by a phantom order)."""
    import engine.exchange as facade

    mine = await ex.place_order("alice", await order(ex, "sell", "0.1", "31000.00"))
    alice_before = await balances(ex, "alice")
    drawn = iter([mine.order.id, "777000777"])
    monkeypatch.setattr(facade, "new_order_id", lambda: next(drawn))
    theirs = await ex.place_order("bob", await order(ex, "buy", "0.1", "29000.00"))
    assert theirs.order.id == "777000777" and theirs.order.status == "NEW"
    assert [o.id for o in await ex.open_orders("alice")] == [mine.order.id]
    assert [o.id for o in await ex.open_orders("bob")] == ["777000777"]
    await settle(ex)
    assert await balances(ex, "alice") == alice_before
    assert await balances(ex, "bob") == {"USD": (100_000 * BTC - 2_900 * BTC, 2_900 * BTC)}


async def test_the_orders_remembered_for_cancels_forget_the_ones_that_ended(ex):
    """The table of orders placed here (their market, for a cancel) kept every order that
    rested and then filled, up to its 50,000 cap: ~10 MB of a web node's memory."""
    remembered = ex._placed  # no public view: what the node keeps in memory
    makers = [
        (await ex.place_order("alice", await order(ex, "sell", "0.01", f"3000{i}.00"))).order.id
        for i in range(10)
    ]
    canceled = [
        (await ex.place_order("alice", await order(ex, "sell", "0.01", "31000.00"))).order.id
        for _ in range(3)
    ]
    assert set(makers + canceled) <= set(remembered)
    taker = await ex.place_order("bob", await order(ex, "buy", "0.1", "30009.00"))
    assert taker.order.status == "FILLED"
    await ex.cancel_all("alice")
    assert not set(makers + canceled) & set(remembered)
    assert taker.order.id not in remembered
