"""Pure parts of the web node: L2 diffs and fan-out, schemas, JSON limits, limiters."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from api import jsonio
from api import schemas as S
from api.errors import ApiError
from api.l2 import Formatter, L2Book, side_diff
from api.marketfeed import DayWindow, MarketFeed
from api.ratelimit import FloodMeter, Limiter, TokenBucket
from api.users import normalize_email
from api.ws import origin_allowed
from client.book import BookStatus, LocalBook
from engine.types import Market

MARKET = Market(
    id="BTC-USD",
    base="BTC",
    quote="USD",
    base_scale=8,
    quote_scale=8,
    tick=1_000_000,  # 0.01
    lot=1_000,  # 0.00001
    min_size=1_000,
    max_notional=2**53 - 1,
    maker_fee_bps=10,
    taker_fee_bps=20,
)


class Sink:
    """A subscriber collecting pushes (as parsed JSON)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def push(self, item: Any) -> None:
        self.messages.append(orjson.loads(item if isinstance(item, str) else item.text))

    def __hash__(self) -> int:
        return id(self)


LOT = MARKET.lot


def px(dollars: int) -> int:
    """Whole dollars -> price units (USD scale 8)."""
    return dollars * 10**8


def level(side: str, price: int, size: int, seq: int) -> dict[str, Any]:
    return {"e": "level", "seq": seq, "ts": 1, "side": side, "price": price, "size": size}


def random_entries(rng: random.Random, start_seq: int, count: int) -> list[tuple[int, int, list]]:
    """Stream entries of random level changes around 100.00 (some with none)."""
    seq = start_seq
    entries = []
    for _ in range(count):
        events = []
        for _ in range(rng.choice([0, 1, 1, 2, 3, 6])):
            seq += 1
            side = rng.choice(["buy", "sell"])
            ticks = 9950 + rng.randint(-60, 50) if side == "buy" else 10050 + rng.randint(-50, 60)
            size = rng.choice([0, 0, 1, 2, 5, 100]) * MARKET.lot
            events.append(level(side, ticks * MARKET.tick, size, seq))
        if not events:  # an entry that changed no level (e.g. an accepted IOC that missed)
            seq += 1
            events.append({"e": "accepted", "seq": seq, "ts": 1})
        entries.append((events[0]["seq"], seq, events))
    return entries


def wire(book: L2Book, depth: int) -> tuple[list[list[str]], list[list[str]]]:
    return book.view(depth)


# -- L2 book -----------------------------------------------------------------------


def test_formatter_uses_the_market_grid() -> None:
    fmt = Formatter(MARKET)
    assert fmt.price(30000 * 10**8 + 10**6) == "30000.01"
    assert fmt.size(1_000) == "0.00001"
    assert fmt.size(0) == "0"


def test_side_diff_reports_entering_and_leaving_levels() -> None:
    book = L2Book(MARKET)
    for p in (100, 99, 98, 97):
        book.bids.set(p, 1)
    old = book.bids.top(2)
    book.bids.set(100, 0)  # best removed: 98 enters a depth-2 view
    diff = side_diff(book.bids, old, book.bids.top(2), {100})
    assert sorted(diff) == [(98, 1), (100, 0)]


@pytest.mark.parametrize("seed", range(6))
def test_fanout_keeps_subscribers_of_every_depth_in_sync(seed: int) -> None:
    rng = random.Random(seed)
    feed = MarketFeed(MARKET)
    feed.load(0, [], [])
    subs: dict[int, tuple[Sink, LocalBook]] = {}
    entries = random_entries(rng, 0, 400)
    joins = {0: [1, 50], 40: [5], 120: [10], 200: [3, 25]}
    for i, (first, last, events) in enumerate(entries):
        for depth in joins.get(i, []):
            sink = Sink()
            subs[depth] = (sink, LocalBook("BTC-USD"))
            sink.push(feed.subscribe_book(sink, depth))
        feed.apply(first, last, events)
        for depth, (sink, local) in subs.items():
            for message in sink.messages:
                assert local.apply(message) is BookStatus.APPLIED, (depth, message)
            sink.messages.clear()
            bids, asks = wire(feed.book, depth)
            assert [list(x) for x in local.bids()] == bids
            assert [list(x) for x in local.asks()] == asks
    assert set(subs) == {1, 3, 5, 10, 25, 50}


def test_every_entry_advances_the_seq_even_without_a_visible_change() -> None:
    feed = MarketFeed(MARKET)
    feed.load(0, [], [])
    sink = Sink()
    sink.push(feed.subscribe_book(sink, 1))
    feed.apply(1, 1, [level("buy", px(100), MARKET.lot, 1)])
    feed.apply(2, 2, [level("buy", px(99), MARKET.lot, 2)])  # below depth 1
    feed.apply(3, 3, [{"e": "accepted", "seq": 3, "ts": 1}])
    feed.apply(4, 4, [level("buy", px(101), MARKET.lot, 4)])
    kinds = [(m["type"], m.get("first_seq"), m["seq"], len(m["bids"])) for m in sink.messages]
    assert kinds == [
        ("snapshot", None, 0, 0),
        ("update", 1, 1, 1),
        ("update", 2, 2, 0),
        ("update", 3, 3, 0),
        ("update", 4, 4, 2),
    ]
    assert sink.messages[-1]["bids"] == [["101.00", "0.00001"], ["100.00", "0"]]


def test_entries_read_together_make_one_update_per_depth() -> None:
    feed = MarketFeed(MARKET)
    feed.load(0, [], [])
    sink, local = Sink(), LocalBook()
    sink.push(feed.subscribe_book(sink, 2))
    entries = [
        {
            b"f": b"1",
            b"l": b"2",
            b"e": orjson.dumps(
                [level("buy", px(10), 5 * LOT, 1), level("buy", px(11), 5 * LOT, 2)]
            ),
        },
        {b"f": b"3", b"l": b"3", b"e": orjson.dumps([level("buy", px(11), 0, 3)])},
        {b"f": b"4", b"l": b"4", b"e": orjson.dumps([level("sell", px(12), 7 * LOT, 4)])},
    ]
    feed.apply_entries(entries)
    assert [(m["type"], m["seq"]) for m in sink.messages] == [("snapshot", 0), ("update", 4)]
    update = sink.messages[-1]
    assert (update["first_seq"], update["bids"], update["asks"]) == (
        1,
        [["10.00", "0.00005"]],
        [["12.00", "0.00007"]],
    )
    for message in sink.messages:
        assert local.apply(message) is BookStatus.APPLIED


def test_gap_in_the_stream_asks_for_a_reload_and_the_reload_diffs() -> None:
    feed = MarketFeed(MARKET)
    feed.load(0, [], [])
    sink = Sink()
    local = LocalBook()
    sink.push(feed.subscribe_book(sink, 10))
    feed.apply(1, 1, [level("sell", px(105), MARKET.lot, 1)])
    feed.apply_entry({b"f": b"5", b"l": b"6", b"e": b"[]"})
    assert feed.needs_reload
    feed.load(6, [(px(100), 3 * MARKET.lot)], [(px(104), MARKET.lot)])
    for message in sink.messages:
        assert local.apply(message) is BookStatus.APPLIED
    assert local.seq == 6
    assert local.bids() == [("100.00", "0.00003")]
    assert local.asks() == [("104.00", "0.00001")]


def test_truncated_load_reloads_when_a_side_runs_short() -> None:
    feed = MarketFeed(MARKET)
    asks = [(px(100 + i), MARKET.lot) for i in range(3)]
    feed.load(1, [], asks, truncated=(False, True))
    sink = Sink()
    feed.subscribe_book(sink, 3)
    assert not feed.needs_reload
    feed.apply(2, 2, [level("sell", px(100), 0, 2)])
    assert feed.needs_reload


def test_trades_ticker_and_heartbeat_pushes() -> None:
    feed = MarketFeed(MARKET)
    feed.load(0, [(px(99), MARKET.lot)], [])
    trades, ticker = Sink(), Sink()
    feed.trades.add(trades)
    trade = {
        "e": "trade", "seq": 1, "ts": 1_700_000_000_000, "tid": 7, "price": px(99),
        "size": MARKET.lot, "quote": 0, "side": "sell", "maker": "11", "taker": "12",
        "mu": "a", "tu": "b", "mfee": 0, "tfee": 0,
    }  # fmt: skip
    feed.apply(1, 2, [trade, level("buy", px(99), 0, 2)])
    assert trades.messages == [
        {
            "channel": "trades", "type": "trade", "market": "BTC-USD", "trade_id": 7,
            "price": "99.00", "size": "0.00001", "taker_side": "sell",
            "maker_order_id": "11", "taker_order_id": "12", "seq": 1, "ts": 1_700_000_000_000,
        }
    ]  # fmt: skip
    feed.tickers.add(ticker)
    t = feed.ticker()
    assert (t["best_bid"], t["best_ask"], t["last"], t["seq"]) == (None, None, "99.00", 2)
    hb = orjson.loads(feed.heartbeat().text)
    assert (hb["channel"], hb["seq"], hb["last_trade_id"]) == ("heartbeat", 2, 7)
    # a replayed trade (same id) is not pushed twice
    feed.apply(3, 3, [{**trade, "seq": 3}])
    assert len(trades.messages) == 1


def test_day_window_forgets_old_buckets() -> None:
    window = DayWindow(span_ms=10_000, bucket_ms=1_000)
    window.add(5_500, 7, 300, 3)  # trades arrive in any order (a stream read backwards)
    window.add(1_000, 5, 200, 1)
    window.add(1_200, 1, 100, 2)
    assert window.total(6_000) == 13
    assert window.price_range(6_000) == (200, 300, 100)  # open: the oldest trade's price
    assert window.total(12_000) == 7
    assert window.price_range(12_000) == (300, 300, 300)
    window.add_minute(5_000, first_tid=4, open_=250, high=400, low=50, volume=2)
    assert window.total(12_000) == 9
    assert window.price_range(12_000) == (300, 400, 50)  # trade 3 still opens the window
    assert window.price_range(30_000) is None


def test_day_window_stays_bounded_when_nobody_asks_for_the_ticker() -> None:
    """Only the ticker trimmed the window: a feed kept alive by book or trades
    subscribers that nobody asked the ticker of kept one bucket a minute forever."""
    window = DayWindow(span_ms=10_000, bucket_ms=1_000)
    for second in range(1_000):  # 100 spans of trades, one a second
        window.add(second * 1_000 + 500, 1, 100 + second, second + 1)
        assert len(window.buckets) <= 12
    assert window.total(1_000_000) == 10  # the last ten seconds: all still counted
    assert window.price_range(1_000_000) == (1_090, 1_099, 1_090)


# -- schemas and JSON ----------------------------------------------------------------

GOOD_ORDER = {"market": "BTC-USD", "side": "buy", "type": "limit", "amount": "1", "price": "2"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"amount": 1.5}, "amount must be a string"),
        ({"amount": 1}, "amount must be a string"),
        ({"price": None, "side": "hold"}, "side"),
        ({"post_only": "true"}, "post_only"),
        ({"client_order_id": "bad id!"}, "client_order_id has an invalid format"),
        ({"extra": 1}, "unknown field extra"),
        ({"market": ["BTC-USD"]}, "market must be a string"),
    ],
)
def test_order_schema_refuses_bad_fields(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError) as info:
        S.parse(S.PlaceOrder, {**GOOD_ORDER, **change})
    assert info.value.code == "INVALID_PARAM"
    assert message in info.value.message


DECIMALS = ' must be a string (decimals are strings, e.g. "1.25")'


@pytest.mark.parametrize(
    ("model", "params", "message"),
    [
        (S.GetOrder, {"order_id": 123}, "order_id must be a string"),
        (S.CancelOrder, {"client_order_id": 7}, "client_order_id must be a string"),
        (S.AuthParams, {"token": 1}, "token must be a string"),
        (S.PlaceOrder, {**GOOD_ORDER, "market": 1}, "market must be a string"),
        (S.PlaceOrder, {**GOOD_ORDER, "price": 2}, "price" + DECIMALS),
        (S.AmendOrder, {"order_id": "1", "amount": 1}, "amount" + DECIMALS),
        (S.Transfer, {"transfer_id": "t", "asset": "USD", "amount": 1.5, "to_address": "a"},
         "amount" + DECIMALS),
    ],
)  # fmt: skip
def test_a_non_string_is_refused_with_a_message_that_fits_the_field(
    model: type[S.Strict], params: dict[str, Any], message: str
) -> None:
    """Only decimal fields mention that decimals are strings (not ids or tokens)."""
    with pytest.raises(ApiError) as info:
        S.parse(model, params)
    assert (info.value.code, info.value.message) == ("INVALID_PARAM", message)


def test_order_schema_requires_fields_and_an_object() -> None:
    for bad in ({"market": "BTC-USD"}, [], "x", 3):
        with pytest.raises(ApiError):
            S.parse(S.PlaceOrder, bad)


@pytest.mark.parametrize("text", [b"NaN", b"[1e400]", b'{"a": Infinity}', b"{", b"\xff"])
def test_json_refuses_non_finite_and_malformed(text: bytes) -> None:
    with pytest.raises(ApiError) as info:
        jsonio.loads(text)
    assert info.value.code == "INVALID_PARAM"


def test_json_depth_limit() -> None:
    deep: Any = 1
    for _ in range(jsonio.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(ApiError):
        jsonio.loads(orjson.dumps(deep))
    assert jsonio.depth_of({"a": [{"b": 1}]}) == 3


# -- limits, origins, e-mails ------------------------------------------------------


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=10, burst=2, now=0.0)
    assert bucket.take(0.0) and bucket.take(0.0) and not bucket.take(0.0)
    assert bucket.take(0.1)
    limiter = Limiter(1, 1, max_keys=2)
    assert limiter.allow("a", 0.0) and not limiter.allow("a", 0.5)
    limiter.allow("b", 0.5)
    limiter.allow("c", 5.0)  # sweeps refilled buckets
    assert len(limiter) <= 2


def test_flood_meter() -> None:
    meter = FloodMeter(limit=2, window=1.0)
    assert not meter.refused(0.0) and not meter.refused(0.1)
    assert meter.refused(0.2)
    assert not meter.refused(2.0)


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "x:1", [], True),
        ("http://x:1", "x:1", [], True),
        ("http://evil.example", "x:1", [], False),
        ("https://app.example", "x:1", ["https://app.example/"], True),
        ("null", "x:1", [], False),
    ],
)
def test_origin_allowlist(origin: str | None, host: str, allowed: list[str], ok: bool) -> None:
    assert origin_allowed(origin, host, allowed) is ok


def test_email_normalisation() -> None:
    assert normalize_email("  Alice.B+x@Example.COM ") == "alice.b+x@example.com"
    for bad in ("a", "a@b", "a@@b.com", "a b@c.com", ".a@b.com", "a@-b.com", "a@b.c0m"):
        with pytest.raises(ApiError):
            normalize_email(bad)


# -- connection queue ----------------------------------------------------------------


async def test_a_connection_that_cannot_keep_up_is_closed_4408_without_waiting() -> None:
    import asyncio

    from api import connection as C

    sent: list[dict[str, Any]] = []
    stuck = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            await stuck.wait()  # the peer never reads
        sent.append(message)

    conn = C.Connection(send, max_msgs=10, max_bytes=10_000)
    conn.start()
    for i in range(11):
        conn.push(f'{{"n": {i}}}')  # never blocks
    await asyncio.sleep(0.05)
    assert conn.closed and conn.close_code == C.CLOSE_SLOW
    assert sent == [{"type": "websocket.close", "code": 4408, "reason": "slow consumer"}]
    conn.push("ignored after close")
    assert not conn.queue


async def test_connection_close_frame_stuck_behind_flow_control_abandons_the_socket() -> None:
    import asyncio

    from api import connection as C

    never = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        await never.wait()

    async def reader() -> None:
        await asyncio.sleep(60)

    conn = C.Connection(send, max_msgs=10, max_bytes=10_000)
    conn.reader = asyncio.create_task(reader())
    old, C.CLOSE_SEND_TIMEOUT = C.CLOSE_SEND_TIMEOUT, 0.05
    try:
        conn.close_soon(C.CLOSE_SLOW)
        await asyncio.sleep(0.2)
    finally:
        C.CLOSE_SEND_TIMEOUT = old
    assert conn.reader.cancelled()


def test_the_worked_example_of_docs_protocol_md() -> None:
    """docs/protocol.md "Book sync": these numbers come from this code."""
    usd = 10**8

    def p(text: str) -> int:
        whole, _, frac = text.partition(".")
        return int(whole) * usd + int(frac.ljust(8, "0"))

    feed = MarketFeed(MARKET)
    feed.load(
        41,
        [(p("30000.10"), p("0.5")), (p("30000.00"), p("1.25"))],
        [(p("30001.00"), p("0.2")), (p("30002.50"), p("2"))],
    )
    sink = Sink()
    sink.push(feed.subscribe_book(sink, 10))
    feed.apply_entries(
        [
            {"f": 42, "l": 42, "e": orjson.dumps([level("buy", p("30000.10"), 0, 42)])},
            {"f": 43, "l": 44, "e": orjson.dumps(
                [{"e": "accepted", "seq": 43, "ts": 1}, level("sell", p("30000.50"), p("0.1"), 44)]
            )},
        ]
    )  # fmt: skip
    snapshot, update = sink.messages
    assert snapshot["bids"] == [["30000.10", "0.50000"], ["30000.00", "1.25000"]]
    assert snapshot["asks"] == [["30001.00", "0.20000"], ["30002.50", "2.00000"]]
    assert (snapshot["seq"], snapshot["checksum"]) == (41, 1061492665)
    assert (update["first_seq"], update["seq"], update["checksum"]) == (42, 44, 3636166051)
    assert update["bids"] == [["30000.10", "0"]]
    assert update["asks"] == [["30000.50", "0.10000"]]


def test_pre_encoded_text_frames_match_websockets() -> None:
    from websockets.frames import Frame as WsFrame
    from websockets.frames import Opcode

    from api.wsproto import Frame, text_frame

    for n in (0, 1, 125, 126, 127, 65535, 65536, 100_000):
        payload = b"x" * n
        assert text_frame(payload) == WsFrame(Opcode.TEXT, payload).serialize(
            mask=False, extensions=[]
        )
    frame = Frame('{"é": 1}')
    assert frame.message()["text"] == '{"é": 1}'
    assert frame.data.endswith('{"é": 1}'.encode())


BAD_DECIMAL = 'must be a decimal string like "1.25"'
NOT_DECIMAL = (
    ("INVALID_PARAM", "price " + BAD_DECIMAL),
    ("INVALID_PARAM", "amount " + BAD_DECIMAL),
)


@pytest.mark.parametrize(
    ("text", "price", "size"),
    [
        ("1", 100_000_000, 100_000_000),
        ("1.01", 101_000_000, 101_000_000),
        ("1.015", ("BAD_PRECISION", "price must be a multiple of 0.01"), 101_500_000),
        ("0.001", ("BAD_PRECISION", "price must be a multiple of 0.01"), 100_000),
        ("-1", *NOT_DECIMAL),
        ("1e5", *NOT_DECIMAL),
        ("", *NOT_DECIMAL),
        ("0", 0, 0),
        ("123456.78", 12_345_678_000_000, 12_345_678_000_000),
        ("1.000000001", ("BAD_PRECISION", "price has more than 8 decimals"),
         ("BAD_PRECISION", "amount has more than 8 decimals")),
    ],
)  # fmt: skip
def test_price_and_size_parsers(text: str, price: Any, size: Any) -> None:
    from engine import units
    from engine.types import EngineError

    for parse, expected in ((units.parse_price, price), (units.parse_size, size)):
        try:
            got: Any = parse(MARKET, text)
        except EngineError as exc:
            got = (exc.code, exc.message)
        assert got == expected


def test_reset_to_an_older_state_sends_fresh_snapshots() -> None:
    feed = MarketFeed(MARKET)
    feed.load(0, [], [])
    sink, local = Sink(), LocalBook()
    sink.push(feed.subscribe_book(sink, 5))
    feed.apply(1, 3, [level("buy", px(10), LOT, 3)])
    feed.reset(2, [(px(9), 2 * LOT)], [])  # Redis restored to seq 2
    assert [m["type"] for m in sink.messages] == ["snapshot", "update", "snapshot"]
    for message in sink.messages:
        local.apply(message)
    assert local.seq == 2 and local.bids() == [("9.00", "0.00002")]
    feed.apply(3, 3, [level("buy", px(11), LOT, 3)])  # new history continues
    assert sink.messages[-1]["seq"] == 3 and local.apply(sink.messages[-1]) is BookStatus.APPLIED
