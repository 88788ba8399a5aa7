"""Matching engine behaviour, on fakeredis and on a real Valkey (``redis`` fixture)."""

from __future__ import annotations

import pytest

from engine import market as M
from engine.types import EngineError, OrderRequest
from tests.engine_helpers import BTC_USD, LOT, dump_market, new_market, px

MKT = BTC_USD.id


def limit(side: str, amount_lots: int, price: int, **kw: object) -> OrderRequest:
    return OrderRequest(MKT, side, "limit", amount_lots * LOT, price, **kw)  # type: ignore[arg-type]


def kinds(outcome: M.Outcome) -> list[str]:
    return [e["e"] for e in outcome.events]


def trades(outcome: M.Outcome) -> list[tuple[int, int, str]]:
    return [(e["price"], e["size"], e["maker"]) for e in outcome.events if e["e"] == "trade"]


@pytest.fixture
async def book(redis):
    await new_market(redis)
    return redis


async def test_resting_order_emits_accepted_and_level(book):
    out = await M.place(book, "1", "alice", limit("buy", 20, px(100)), 10)
    assert out.status == "NEW"
    assert kinds(out) == ["accepted", "level"]
    assert out.events[-1] == {
        "seq": 3,
        "ts": 10,
        "e": "level",
        "side": "buy",
        "price": px(100),
        "size": 20 * LOT,
    }
    snap = await M.depth(book, MKT, 10)
    assert snap.seq == 3 and snap.bids == [(px(100), 20 * LOT)] and snap.asks == []


async def test_price_time_priority_and_maker_price(book):
    await M.place(book, "1", "alice", limit("sell", 10, px(101)), 1)
    await M.place(book, "2", "carol", limit("sell", 10, px(100)), 2)
    await M.place(book, "3", "dave", limit("sell", 10, px(100)), 3)
    out = await M.place(book, "4", "bob", limit("buy", 25, px(101)), 4)
    # best price first, then time within the price; trades at the maker's price
    assert trades(out) == [
        (px(100), 10 * LOT, "2"),
        (px(100), 10 * LOT, "3"),
        (px(101), 5 * LOT, "1"),
    ]
    assert out.status == "FILLED"
    assert [e["tid"] for e in out.events if e["e"] == "trade"] == [1, 2, 3]
    snap = await M.depth(book, MKT, 10)
    assert snap.asks == [(px(101), 5 * LOT)] and snap.bids == []


async def test_fees_are_rounded_up_in_the_asset_received(book):
    await M.place(book, "1", "alice", limit("sell", 13, px(100.01)), 1)
    out = await M.place(book, "2", "bob", limit("buy", 13, px(100.01)), 2)
    trade = next(e for e in out.events if e["e"] == "trade")
    quote = 10001 * 13 * 10  # price ticks x lots x mult
    assert trade["quote"] == quote
    assert trade["mfee"] == -(-quote * 10 // 10000)  # maker sold: fee in quote
    assert trade["tfee"] == -(-13 * LOT * 20 // 10000)  # taker bought: fee in base


async def test_seq_is_contiguous_across_calls_and_stream_entries(book):
    await M.place(book, "1", "alice", limit("sell", 10, px(100)), 1)
    await M.place(book, "2", "bob", limit("buy", 5, px(100)), 2)
    await M.cancel(book, MKT, "1", "alice", 3)
    entries = await book.xrange("{m:BTC-USD}:ev")
    seqs = []
    for _, fields in entries:
        import orjson

        events = orjson.loads(fields[b"e"])
        assert [e["seq"] for e in events] == list(range(int(fields[b"f"]), int(fields[b"l"]) + 1))
        seqs += [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_ioc_expires_the_rest(book):
    await M.place(book, "1", "alice", limit("sell", 5, px(100)), 1)
    out = await M.place(book, "2", "bob", limit("buy", 8, px(100), time_in_force="IOC"), 2)
    assert out.status == "EXPIRED" and out.filled == 5 * LOT
    assert (await M.depth(book, MKT, 5)).bids == []


async def test_fok_all_or_nothing(book):
    await M.place(book, "1", "alice", limit("sell", 5, px(100)), 1)
    before = await dump_market(book, MKT)
    out = await M.place(book, "2", "bob", limit("buy", 8, px(100), time_in_force="FOK"), 2)
    assert out.status == "EXPIRED" and out.filled == 0 and "trade" not in kinds(out)
    assert (await M.depth(book, MKT, 5)).asks == [(px(100), 5 * LOT)]
    assert before["{m:BTC-USD}:asks"] == (await dump_market(book, MKT))["{m:BTC-USD}:asks"]
    out = await M.place(book, "3", "bob", limit("buy", 5, px(100), time_in_force="FOK"), 3)
    assert out.status == "FILLED"


async def test_post_only_would_take_is_rejected(book):
    await M.place(book, "1", "alice", limit("sell", 5, px(100)), 1)
    out = await M.place(book, "2", "bob", limit("buy", 5, px(100), post_only=True), 2)
    assert out.status == "REJECTED"
    done = out.events[-1]
    assert done["reason"] == "REJECTED" and done["msg"] == "POST_ONLY_WOULD_TAKE"
    out = await M.place(book, "3", "bob", limit("buy", 5, px(99.99), post_only=True), 3)
    assert out.status == "NEW"


async def test_market_sell_by_amount_and_buy_by_quote_budget(book):
    await M.place(book, "1", "alice", limit("buy", 10, px(100)), 1)
    await M.place(book, "2", "alice", limit("buy", 10, px(99)), 2)
    out = await M.place(book, "3", "bob", OrderRequest(MKT, "sell", "market", 15 * LOT), 3)
    assert out.status == "FILLED" and trades(out) == [
        (px(100), 10 * LOT, "1"),
        (px(99), 5 * LOT, "2"),
    ]
    await M.place(book, "4", "carol", limit("sell", 10, px(200)), 4)
    # budget of 1,000 USD buys 5 lots... 0.00005 BTC costs 0.01 USD; spend 1.2345 USD
    budget = 123_450_000
    out = await M.place(
        book, "5", "bob", OrderRequest(MKT, "buy", "market", 0, quote_amount=budget), 5
    )
    per_lot = px(200) // BTC_USD.tick * BTC_USD.mult
    assert out.filled == min(10, budget // per_lot) * LOT
    assert out.cost <= budget


async def test_a_quote_budget_market_buy_is_filled_when_spent_and_expired_when_the_book_runs_out(
    book,
):
    await M.place(book, "1", "alice", limit("sell", 3, px(100)), 1)
    per_lot = px(100) // BTC_USD.tick * BTC_USD.mult
    # 2 lots and a half of budget: spent on 2 lots, the rest buys no lot -> FILLED
    out = await M.place(
        book, "2", "bob", OrderRequest(MKT, "buy", "market", 0, quote_amount=2 * per_lot + 1), 2
    )
    assert out.status == "FILLED" and out.filled == 2 * LOT
    # 10 lots of budget, 1 lot left on the book: it fills 1 and finds no more -> EXPIRED
    out = await M.place(
        book, "3", "bob", OrderRequest(MKT, "buy", "market", 0, quote_amount=10 * per_lot), 3
    )
    assert out.status == "EXPIRED" and out.filled == LOT
    assert [e["msg"] for e in out.events if e["e"] == "done" and e["id"] == "3"] == ["NO_LIQUIDITY"]


async def test_a_fok_market_buy_beyond_its_budget_fills_nothing(book):
    await M.place(book, "1", "bob", limit("sell", 1, px(100)), 1)  # the buyer's own
    await M.place(book, "2", "alice", limit("sell", 1, px(100)), 2)
    await M.place(book, "3", "alice", limit("sell", 1, px(200)), 3)
    per_lot = px(100) // BTC_USD.tick * BTC_USD.mult
    # budget for 2 lots at 100 (+5 %); without bob's own ask (STP) it needs 100 + 200
    req = OrderRequest(MKT, "buy", "market", 2 * LOT, 0, "FOK", quote_amount=21 * per_lot // 10,
                       stp="cancel_oldest")  # fmt: skip
    out = await M.place(book, "4", "bob", req, 4)
    assert out.status == "EXPIRED" and out.filled == 0 and "trade" not in kinds(out)
    assert (await M.get_order(book, MKT, "1")).status == "NEW"  # nothing was matched


async def test_market_order_on_empty_book_expires(book):
    out = await M.place(book, "1", "bob", OrderRequest(MKT, "sell", "market", 10 * LOT), 1)
    assert out.status == "EXPIRED" and out.events[-1]["msg"] == "NO_LIQUIDITY"


@pytest.mark.parametrize(
    ("stp", "taker_status", "maker_left"),
    [
        ("cancel_newest", "CANCELED", True),
        ("cancel_oldest", "NEW", False),
        ("cancel_both", "CANCELED", False),
    ],
)
async def test_self_trade_prevention(book, stp, taker_status, maker_left):
    await M.place(book, "1", "alice", limit("sell", 5, px(100)), 1)
    out = await M.place(book, "2", "alice", limit("buy", 5, px(100), stp=stp), 2)
    assert "trade" not in kinds(out)
    assert out.status == taker_status
    maker = await M.get_order(book, MKT, "1")
    assert maker is not None and (maker.status == "NEW") is maker_left


async def test_idempotent_by_order_id(book):
    first = await M.place(book, "1", "alice", limit("buy", 5, px(100)), 1)
    before = await dump_market(book, MKT)
    again = await M.place(book, "1", "alice", limit("buy", 7, px(101)), 2)
    assert again.kind == "replay" and again.status == first.status and again.events == []
    assert await dump_market(book, MKT) == before


async def test_an_order_id_of_another_user_is_refused_not_replayed(book):
    await M.place(book, "1", "alice", limit("buy", 5, px(100)), 1)
    before = await dump_market(book, MKT)
    with pytest.raises(EngineError) as refused:
        await M.place(book, "1", "bob", limit("buy", 5, px(100)), 2)
    assert refused.value.code == "ORDER_ID_TAKEN"
    assert await dump_market(book, MKT) == before


async def test_client_order_id_duplicate_returns_existing(book):
    await M.place(book, "1", "alice", limit("buy", 5, px(100), client_order_id="abc"), 1)
    before = await dump_market(book, MKT)
    dup = await M.place(book, "2", "alice", limit("buy", 5, px(100), client_order_id="abc"), 2)
    assert dup.kind == "duplicate" and dup.order_id == "1"
    assert await dump_market(book, MKT) == before
    other_user = await M.place(book, "3", "bob", limit("buy", 5, px(100), client_order_id="abc"), 3)
    assert other_user.kind == "new"


async def test_cancel_reduce_and_cancel_many(book):
    await M.place(book, "1", "alice", limit("buy", 10, px(100)), 1)
    await M.place(book, "2", "alice", limit("buy", 10, px(100)), 2)
    await M.place(book, "3", "bob", limit("buy", 10, px(99)), 3)
    out = await M.reduce(book, MKT, "1", "alice", 4 * LOT, 4)
    assert kinds(out) == ["reduced", "level"] and out.events[-1]["size"] == 14 * LOT
    # reduce keeps priority: order 1 still fills first
    fill = await M.place(book, "4", "carol", limit("sell", 4, px(100)), 5)
    assert trades(fill) == [(px(100), 4 * LOT, "1")]
    _, canceled = await M.cancel_many(book, MKT, "alice", ["1", "2", "3", "999"], 6)
    assert canceled == ["2"]  # 1 is filled, 3 is bob's, 999 unknown
    assert (await M.depth(book, MKT, 5)).bids == [(px(99), 10 * LOT)]
    with pytest.raises(EngineError) as err:
        await M.cancel(book, MKT, "3", "alice", 7)
    assert err.value.code == "UNKNOWN_ORDER"


async def test_deep_sweep_continues_over_bounded_calls(book):
    for i in range(30):
        await M.place(book, f"s{i}", "alice", limit("sell", 1, px(100 + i)), i + 1)
    out = await M.place(book, "big", "bob", limit("buy", 30, px(200)), 100, max_fills=7)
    assert out.status == "FILLED" and len(trades(out)) == 30
    seqs = [e["seq"] for e in out.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert (await M.depth(book, MKT, 5)).asks == []


@pytest.mark.parametrize("spare_lots", [0, 1])
async def test_a_quote_budget_sweep_over_bounded_calls_ends_filled_or_expired(book, spare_lots):
    """Spent within the book (what is left buys no lot) -> FILLED; a budget that
    outlasts the book -> EXPIRED; both when the sweep spans several engine calls."""
    for i in range(9):
        await M.place(book, f"s{i}", "alice", limit("sell", 1, px(100)), i + 1)
    per_lot = px(100) // BTC_USD.tick * BTC_USD.mult
    budget = (9 + spare_lots) * per_lot - (1 - spare_lots) * (per_lot // 2)
    req = OrderRequest(MKT, "buy", "market", 0, quote_amount=budget)
    out = await M.place(book, "big", "bob", req, 100, max_fills=3)
    filled = 9 * LOT if spare_lots else 8 * LOT
    assert (out.status, out.filled) == (("EXPIRED", filled) if spare_lots else ("FILLED", filled))


async def test_tombstone_blocks_a_late_place(book):
    assert await M.tombstone(book, MKT, "late", 1) is True
    with pytest.raises(EngineError) as err:
        await M.place(book, "late", "alice", limit("buy", 5, px(100)), 2)
    assert err.value.code == "UNKNOWN_ORDER"
    await M.place(book, "1", "alice", limit("buy", 5, px(100)), 3)
    assert await M.tombstone(book, MKT, "1", 4) is False


async def test_halt_and_cancel_only(book):
    await M.place(book, "1", "alice", limit("buy", 5, px(100)), 1)
    await M.set_status(book, MKT, "CANCEL_ONLY", 2)
    with pytest.raises(EngineError) as err:
        await M.place(book, "2", "alice", limit("buy", 5, px(100)), 3)
    assert err.value.code == "MARKET_NOT_TRADING"
    await M.cancel(book, MKT, "1", "alice", 4)
    await M.set_status(book, MKT, "TRADING", 5)
    await M.place(book, "3", "alice", limit("buy", 5, px(100)), 6)
