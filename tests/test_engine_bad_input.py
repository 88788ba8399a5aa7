"""Bad input to every engine call: a clear error code and not one byte changed."""

from __future__ import annotations

import pytest

from engine import keys
from engine import market as M
from engine.types import EngineError, OrderRequest
from tests.engine_helpers import BTC_USD, LOT, TICK, dump_market, new_market, px

MKT = BTC_USD.id
GOOD = ["n1", "alice", "buy", "limit", "GTC", 0, px(100), 5 * LOT, 0, "cancel_newest", "", 10, ""]


def place_args(**changes: object) -> list[object]:
    names = [
        "id",
        "user",
        "side",
        "type",
        "tif",
        "po",
        "price",
        "amount",
        "qb",
        "stp",
        "cid",
        "now",
        "max_fills",
    ]
    args = list(GOOD)
    for name, value in changes.items():
        args[names.index(name)] = value
    return args


BAD_PLACES = [
    ("zero amount", place_args(amount=0), "INVALID_PARAM"),
    ("negative amount", place_args(amount=-5), "INVALID_PARAM"),
    ("fractional amount", place_args(amount="1.5"), "INVALID_PARAM"),
    ("huge amount", place_args(amount=2**60), "INVALID_PARAM"),
    ("zero price", place_args(price=0), "INVALID_PARAM"),
    ("negative price", place_args(price=-TICK), "INVALID_PARAM"),
    ("off-tick price", place_args(price=px(100) + 1), "BAD_PRECISION"),
    ("off-lot amount", place_args(amount=5 * LOT + 1), "BAD_PRECISION"),
    ("above max notional", place_args(price=px(10_000_000), amount=10**9 * LOT), "INVALID_PARAM"),
    ("bad side", place_args(side="hold"), "INVALID_PARAM"),
    ("bad type", place_args(type="stop"), "INVALID_PARAM"),
    ("bad tif", place_args(tif="GTD"), "INVALID_PARAM"),
    ("bad post_only", place_args(po=2), "INVALID_PARAM"),
    ("post-only IOC", place_args(po=1, tif="IOC"), "INVALID_PARAM"),
    ("bad stp", place_args(stp="none"), "INVALID_PARAM"),
    ("bad client order id", place_args(cid="has space"), "INVALID_PARAM"),
    ("bad order id", place_args(id='x"y'), "INVALID_PARAM"),
    ("market with price", place_args(type="market"), "INVALID_PARAM"),
    ("market buy without budget", place_args(type="market", price=0), "INVALID_PARAM"),
    (
        "market sell with budget",
        place_args(type="market", side="sell", price=0, qb=100),
        "INVALID_PARAM",
    ),
    ("limit with budget", place_args(qb=100), "INVALID_PARAM"),
]


@pytest.fixture
async def book(redis):
    await new_market(redis)
    await M.place(redis, "bob1", "bob", OrderRequest(MKT, "sell", "limit", 5 * LOT, px(101)), 2)
    await M.place(redis, "al1", "alice", OrderRequest(MKT, "buy", "limit", 5 * LOT, px(99)), 3)
    return redis


async def assert_refused(redis, call, code: str) -> None:
    before = await dump_market(redis, MKT)
    with pytest.raises(EngineError) as err:
        await call()
    assert err.value.code == code, err.value
    assert await dump_market(redis, MKT) == before


@pytest.mark.parametrize(("case", "args", "code"), BAD_PLACES, ids=[c[0] for c in BAD_PLACES])
async def test_bad_place_changes_nothing(book, case, args, code):
    await assert_refused(
        book, lambda: M.fcall(book, "mkt_place", keys.market_cfg(MKT), *args), code
    )


async def test_unknown_market(book):
    req = OrderRequest("DOGE-USD", "buy", "limit", 5 * LOT, px(1))
    await assert_refused(book, lambda: M.place(book, "n1", "alice", req, 10), "UNKNOWN_MARKET")
    await assert_refused(
        book, lambda: M.cancel(book, "DOGE-USD", "al1", "alice", 10), "UNKNOWN_MARKET"
    )
    await assert_refused(book, lambda: M.depth(book, "DOGE-USD", 10), "UNKNOWN_MARKET")


async def test_halted_market_refuses_everything(book):
    await M.set_status(book, MKT, "HALT", 5)
    req = OrderRequest(MKT, "buy", "limit", 5 * LOT, px(100))
    await assert_refused(book, lambda: M.place(book, "n1", "alice", req, 10), "MARKET_NOT_TRADING")
    await assert_refused(
        book, lambda: M.cancel(book, MKT, "al1", "alice", 10), "MARKET_NOT_TRADING"
    )
    await assert_refused(
        book, lambda: M.cancel_many(book, MKT, "alice", ["al1"], 10), "MARKET_NOT_TRADING"
    )
    await assert_refused(
        book, lambda: M.reduce(book, MKT, "al1", "alice", 2 * LOT, 10), "MARKET_NOT_TRADING"
    )


@pytest.mark.parametrize(("order_id", "user"), [("nope", "alice"), ("bob1", "alice")])
async def test_unknown_and_foreign_orders_look_the_same(book, order_id, user):
    await assert_refused(book, lambda: M.cancel(book, MKT, order_id, user, 10), "UNKNOWN_ORDER")
    await assert_refused(
        book, lambda: M.reduce(book, MKT, order_id, user, 2 * LOT, 10), "UNKNOWN_ORDER"
    )


@pytest.mark.parametrize(
    ("new_amount", "code"),
    [
        (0, "INVALID_PARAM"),
        (-LOT, "INVALID_PARAM"),
        (5 * LOT, "INVALID_PARAM"),
        (9 * LOT, "INVALID_PARAM"),
        (2 * LOT + 1, "BAD_PRECISION"),
    ],
)
async def test_bad_reduce(book, new_amount, code):
    await assert_refused(book, lambda: M.reduce(book, MKT, "al1", "alice", new_amount, 10), code)


@pytest.mark.parametrize(
    "pairs",
    [
        ["tick", "7"],
        ["mfee", "5000"],
        ["status", "OPEN"],
        ["color", "red"],
        ["lot", "-1"],
        ["tick"],
    ],
)
async def test_bad_configure(book, pairs):
    await assert_refused(
        book,
        lambda: M.fcall(book, "mkt_configure", keys.market_cfg(MKT), 10, *pairs),
        "INVALID_PARAM",
    )


async def test_bad_new_market_is_refused(redis):
    # 0.01 x 0.00000001 BTC is a fraction of the quote's minimal unit
    args = [
        1,
        "base",
        "BTC",
        "quote",
        "USD",
        "bscale",
        8,
        "tick",
        10**6,
        "lot",
        1,
        "min",
        1,
        "maxn",
        10**12,
        "mfee",
        0,
        "tfee",
        0,
    ]
    with pytest.raises(EngineError) as err:
        await M.fcall(redis, "mkt_configure", keys.market_cfg("X-Y"), *args)
    assert err.value.code == "INVALID_PARAM"
    assert await dump_market(redis, "X-Y") == {}
