"""Second, independent black-box acceptance pass over /work/shared/PROTOCOL.md.

Drives the running exchange with a raw WebSocket (``websockets``) and raw HTTP
(``httpx``) only: nothing of ``client/`` and no helper that parses pushes for us.
Covers what the first pass (``test_acceptance_protocol.py``) leaves out: fee rounding
on coarse asset scales, the execution-report sequence of IOC / market / STP orders,
heartbeat vs book ``seq``, exact depth-limited book views, per-market unsubscribe,
envelope and strict-type edge cases, query filters, cancel-all beside a halted market.

Targets the e2e session exchange, or a live one when ``HFTX_ACCEPT_URL`` is set
(``HFTX_ACCEPT_ADMIN_EMAIL`` / ``HFTX_ACCEPT_ADMIN_PASSWORD`` name its admin).
"""

from __future__ import annotations

import asyncio
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest
import websockets

from tests.test_e2e_support import Exchange, fund, limit, new_market, new_user

pytest_plugins = ["tests.test_e2e_support"]

Msg = dict[str, Any]


class Raw:
    """A bare WebSocket: frames in, frames out; answers told from pushes by ``id``."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.frames: list[Msg] = []  # everything received, in order
        self.taken: set[int] = set()  # indexes of frames ``until`` returned
        self.next_id = 0

    @classmethod
    async def open(cls, url: str, token: str | None = None) -> Raw:
        raw = cls(await websockets.connect(url, max_size=2**24))
        if token is not None:
            answer = await raw.call("auth", {"token": token})
            assert answer["status"] == 200, answer
        return raw

    async def send(self, frame: Any) -> None:
        await self.socket.send(frame if isinstance(frame, str) else orjson.dumps(frame).decode())

    async def _next(self, timeout: float) -> Msg:
        frame: Msg = orjson.loads(await asyncio.wait_for(self.socket.recv(), timeout))
        self.frames.append(frame)
        return frame

    async def call(self, method: str, params: Any = None, **envelope: Any) -> Msg:
        """Send a request and return its answer (pushes meanwhile are kept)."""
        self.next_id += 1
        request = {"id": envelope.pop("id", self.next_id), "method": method, **envelope}
        if params is not None:
            request["params"] = params
        await self.send(request)
        return await self.until(lambda m: "status" in m and m.get("id") == request["id"])

    async def until(self, match: Callable[[Msg], bool], timeout: float = 10.0) -> Msg:
        """The first frame that matches and that ``until`` did not return yet."""
        deadline = time.monotonic() + timeout
        while True:
            for index, frame in enumerate(self.frames):
                if index not in self.taken and match(frame):
                    self.taken.add(index)
                    return frame
            left = deadline - time.monotonic()
            assert left > 0, f"no matching frame in {timeout}s; last: {self.frames[-3:]}"
            await self._next(left)

    async def quiet(self, seconds: float) -> list[Msg]:
        """Every frame received within ``seconds`` (bounded in time)."""
        start = len(self.frames)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                await self._next(left)
            except TimeoutError:
                break
        return self.frames[start:]

    async def close(self) -> None:
        await self.socket.close()


@pytest.fixture
async def sockets() -> AsyncIterator[list[Raw]]:
    """Sockets opened by a test, closed after it."""
    opened: list[Raw] = []
    yield opened
    for raw in opened:
        await raw.close()


async def connect(live: Exchange, sockets: list[Raw], token: str | None) -> Raw:
    raw = await Raw.open(live.ws_url(), token)
    sockets.append(raw)
    return raw


async def placed(raw: Raw, params: Msg) -> Msg:
    answer = await raw.call("order.place", params)
    assert answer["status"] == 200, answer
    return dict(answer["result"])


def crc(asks: list[list[str]], bids: list[list[str]]) -> int:
    """PROTOCOL.md's checksum, as the contract words it."""
    text = "".join(
        price.replace(".", "").lstrip("0") + size.replace(".", "").lstrip("0")
        for price, size in asks[:10] + bids[:10]
    )
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


def is_answer(m: Msg) -> bool:
    return "status" in m and "id" in m


def error_of(answer: Msg) -> tuple[int, str]:
    assert set(answer) == {"id", "status", "error"} and set(answer["error"]) >= {"code", "message"}
    return answer["status"], answer["error"]["code"]


# -- trading: what the contract promises about fills, fees and execution reports --------


async def test_fees_round_up_to_the_receiving_assets_minimal_unit(
    live: Exchange, sockets: list[Raw]
) -> None:
    """Scale 0 base, scale 2 quote: 20 bps of 3 units and 10 bps of 3.69 both round up."""
    tag = uuid.uuid4().hex[:6].upper()
    base, quote = f"B{tag}", f"Q{tag}"
    async with live.admin() as admin:
        for symbol, scale in ((base, 0), (quote, 2)):
            r = await admin.post("/admin/assets", json={"symbol": symbol, "scale": scale})
            assert r.status_code == 200 and r.json() == {"symbol": symbol, "scale": scale}
        spec = {
            "id": f"{base}-{quote}",
            "base": base,
            "quote": quote,
            "price_increment": "0.01",
            "size_increment": "1",
            "min_size": "1",
            "maker_fee_bps": 10,
            "taker_fee_bps": 20,
        }
        r = await admin.post("/admin/markets", json=spec)
        assert r.status_code == 200, r.text
    market = f"{base}-{quote}"
    seller, buyer = await new_user(live), await new_user(live)
    await fund(live, seller, {base: "10"})
    await fund(live, buyer, {quote: "100"})
    sws = await connect(live, sockets, seller.token)
    bws = await connect(live, sockets, buyer.token)
    assert (await sws.call("subscribe", {"channel": "orders"}))["status"] == 200
    maker = await placed(sws, limit(market, "sell", "3", "1.23"))
    assert (maker["amount"], maker["filled"], maker["cost"]) == ("3", "0", "0.00")
    taker = await placed(bws, limit(market, "buy", "3", "1.23"))
    assert (taker["status"], taker["cost"], taker["average"]) == ("FILLED", "3.69", "1.23")
    assert taker["fills"] == [
        {"trade_id": 1, "price": "1.23", "size": "3", "fee": "1", "fee_asset": base,
         "maker_order_id": maker["id"], "liquidity": "taker"}
    ]  # fmt: skip
    report = await sws.until(lambda m: m.get("channel") == "orders" and m["exec_type"] == "TRADE")
    assert (report["fee"], report["fee_asset"], report["liquidity"]) == ("0.01", quote, "maker")

    async def settled(user: Any, want: dict[str, str]) -> bool:
        async with live.http("a", user.token) as http:
            rows = {b["asset"]: b["total"] for b in (await http.get("/balances")).json()}
        return all(rows.get(asset) == total for asset, total in want.items())

    deadline = time.monotonic() + 10
    while not (
        await settled(seller, {base: "7", quote: "3.68"})
        and await settled(buyer, {base: "2", quote: "96.31"})
    ):
        assert time.monotonic() < deadline, "balances never settled"
        await asyncio.sleep(0.05)


async def test_execution_reports_of_ioc_market_and_stp_orders(
    live: Exchange, sockets: list[Raw]
) -> None:
    """Every report carries the order after the event; done reports say why."""
    market = await new_market(live)
    base = market.split("-")[0]
    maker, taker = await new_user(live), await new_user(live)
    await fund(live, maker, {base: "10"})
    await fund(live, taker, {base: "10", "USD": "1000"})
    mws = await connect(live, sockets, maker.token)
    tws = await connect(live, sockets, taker.token)
    assert (await tws.call("subscribe", {"channel": "orders"}))["status"] == 200
    await placed(mws, limit(market, "sell", "1", "10"))

    def reports(order_id: str) -> list[tuple[Any, ...]]:
        return [
            (m["exec_type"], m["order"]["status"], m["order"]["filled"],
             m["order"]["remaining"], m.get("reason"), m.get("liquidity"))
            for m in tws.frames
            if m.get("channel") == "orders" and m["order"]["id"] == order_id
        ]  # fmt: skip

    ioc = await placed(tws, limit(market, "buy", "3", "10.5", time_in_force="IOC"))
    assert (ioc["status"], ioc["filled"], ioc["remaining"]) == ("EXPIRED", "1.000", "0.000")
    await tws.until(lambda m: m.get("exec_type") == "EXPIRED" and m["order"]["id"] == ioc["id"])
    assert reports(ioc["id"]) == [
        ("NEW", "NEW", "0.000", "3.000", None, None),
        ("TRADE", "PARTIALLY_FILLED", "1.000", "2.000", None, "taker"),
        ("EXPIRED", "EXPIRED", "1.000", "0.000", "IOC", None),
    ]
    fok = await placed(tws, limit(market, "buy", "1", "10", time_in_force="FOK"))
    assert (fok["status"], fok["fills"], fok["remaining"]) == ("EXPIRED", [], "0.000")

    await placed(mws, limit(market, "sell", "0.5", "11"))
    sweep = await placed(tws, {"market": market, "side": "buy", "type": "market", "amount": "2"})
    assert (sweep["status"], sweep["filled"], sweep["price"]) == ("EXPIRED", "0.500", None)
    done = await tws.until(
        lambda m: m.get("exec_type") == "EXPIRED" and m["order"]["id"] == sweep["id"]
    )
    assert done["order"]["cost"] == "5.50000000" and done["order"]["average"] == "11.00"

    resting = await placed(tws, limit(market, "sell", "1", "20"))
    stp = await placed(tws, limit(market, "buy", "1", "20"))  # stp defaults to cancel_newest
    assert (stp["status"], stp["fills"]) == ("CANCELED", [])
    await tws.until(lambda m: m.get("exec_type") == "CANCELED" and m["order"]["id"] == stp["id"])
    assert reports(stp["id"])[-1] == ("CANCELED", "CANCELED", "0.000", "0.000", "STP", None)
    assert [o["id"] for o in (await tws.call("orders.open"))["result"]] == [resting["id"]]


async def test_cancel_all_without_a_market_skips_a_halted_one(
    live: Exchange, sockets: list[Raw]
) -> None:
    """An error changes no state: a halted market's orders stay, the others are canceled
    and reported; naming the halted market is refused and cancels nothing."""
    trading, halted = await new_market(live), await new_market(live)
    user = await new_user(live)
    await fund(live, user, {"USD": "100"})
    ws = await connect(live, sockets, user.token)
    a = await placed(ws, limit(trading, "buy", "1", "1"))
    b = await placed(ws, limit(halted, "buy", "1", "1"))
    async with live.admin() as admin:
        r = await admin.post(f"/admin/markets/{halted}/status", json={"status": "HALT"})
        assert r.status_code == 200 and r.json()["status"] == "HALT"
    try:
        named = await ws.call("order.cancel_all", {"market": halted})
        assert error_of(named) == (400, "MARKET_NOT_TRADING")
        async with live.http("a", user.token) as http:
            r = await http.delete("/orders")
            assert r.status_code == 200, r.text
            assert [(o["id"], o["status"]) for o in r.json()] == [(a["id"], "CANCELED")]
        still = (await ws.call("orders.open"))["result"]
        assert [(o["id"], o["status"]) for o in still] == [(b["id"], "NEW")]
    finally:
        async with live.admin() as admin:
            await admin.post(f"/admin/markets/{halted}/status", json={"status": "TRADING"})


# -- market data: seq, heartbeat, depth views, unsubscribe ------------------------------


async def test_heartbeat_reports_the_books_seq_and_the_last_trade(
    live: Exchange, sockets: list[Raw]
) -> None:
    market = await new_market(live)
    maker, taker = await new_user(live), await new_user(live)
    base = market.split("-")[0]
    await fund(live, maker, {base: "5"})
    await fund(live, taker, {"USD": "500"})
    watch = await connect(live, sockets, maker.token)
    for channel in ("book", "trades", "heartbeat"):
        answer = await watch.call("subscribe", {"channel": channel, "markets": [market]})
        assert answer["status"] == 200
    snap = await watch.until(lambda m: m.get("channel") == "book")
    mws = await connect(live, sockets, maker.token)
    tws = await connect(live, sockets, taker.token)
    await placed(mws, limit(market, "sell", "1", "10"))
    await placed(mws, limit(market, "sell", "1", "12"))
    await placed(tws, limit(market, "buy", "1.5", "12"))
    seq, last_trade = snap["seq"], 0
    async with live.http("a") as http:
        final = (await http.get(f"/markets/{market}/book")).json()
    while seq < final["seq"] or last_trade < 2:
        m = await watch.until(lambda m: m.get("channel") in ("book", "trades"))
        if m["channel"] == "trades":
            assert m["trade_id"] == last_trade + 1 and m["seq"] <= final["seq"]
            last_trade = m["trade_id"]
        else:
            assert m["first_seq"] == seq + 1
            seq = m["seq"]
    assert seq == final["seq"]
    beat = await watch.until(lambda m: m.get("channel") == "heartbeat" and m["seq"] >= seq)
    assert (beat["seq"], beat["last_trade_id"], beat["market"]) == (seq, 2, market)
    assert isinstance(beat["ts"], int) and beat["ts"] > 1_600_000_000_000


async def test_a_depth_limited_book_stays_exactly_the_top_levels(
    live: Exchange, sockets: list[Raw]
) -> None:
    """Depth 3: levels leaving the view come as "0", entering ones with their size; the
    local book (rule of PROTOCOL.md) equals GET /book?depth=3 at the same seq."""
    market = await new_market(live)
    base = market.split("-")[0]
    maker, taker = await new_user(live), await new_user(live)
    await fund(live, maker, {base: "100", "USD": "1000"})
    await fund(live, taker, {base: "100", "USD": "1000"})
    mws = await connect(live, sockets, maker.token)
    tws = await connect(live, sockets, taker.token)
    watch = await connect(live, sockets, maker.token)
    answer = await watch.call("subscribe", {"channel": "book", "markets": [market], "depth": 3})
    assert answer["result"] == {"channel": "book", "markets": [market], "depth": 3}
    snap = await watch.until(lambda m: m.get("channel") == "book")
    assert (snap["type"], snap["bids"], snap["asks"], snap["checksum"]) == ("snapshot", [], [], 0)
    book: dict[str, dict[str, str]] = {"bids": {}, "asks": {}}
    seq = snap["seq"]
    ids = []
    for i, price in enumerate(("0.05", "0.07", "0.06", "1.00", "0.50", "0.01")):
        ids.append((await placed(mws, limit(market, "buy", f"{i + 1}", price)))["id"])
    for price in ("5.00", "3.10", "4.00", "3.05", "9.99"):
        await placed(mws, limit(market, "sell", "0.250", price))
    await placed(tws, limit(market, "sell", "6", "0.50"))  # takes 1.00 and 2 of 0.50
    await mws.call("order.cancel", {"order_id": ids[1]})  # 0.07 leaves, 0.05 comes back
    await placed(tws, limit(market, "buy", "0.25", "3.05"))  # the best ask leaves
    async with live.http("a") as http:
        final = (await http.get(f"/markets/{market}/book", params={"depth": 3})).json()
    while seq < final["seq"]:
        m = await watch.until(lambda m: m.get("channel") == "book")
        assert m["type"] == "update" and m["first_seq"] == seq + 1, m
        for side in ("bids", "asks"):
            for price, size in m[side]:
                if size == "0":
                    book[side].pop(price, None)
                else:
                    book[side][price] = size
            assert len(book[side]) <= 3
        seq = m["seq"]
        asks = sorted(book["asks"].items(), key=lambda kv: Decimal(kv[0]))
        bids = sorted(book["bids"].items(), key=lambda kv: -Decimal(kv[0]))
        assert m["checksum"] == crc([list(x) for x in asks], [list(x) for x in bids])
    assert final["bids"] == [["0.50", "3.000"], ["0.06", "3.000"], ["0.05", "1.000"]]
    assert final["asks"] == [["3.10", "0.250"], ["4.00", "0.250"], ["5.00", "0.250"]]
    assert book == {side: dict(map(tuple, final[side])) for side in ("bids", "asks")}
    assert final["checksum"] == crc(final["asks"], final["bids"])


async def test_unsubscribe_stops_only_that_market(live: Exchange, sockets: list[Raw]) -> None:
    one, two = await new_market(live), await new_market(live)
    user = await new_user(live)
    await fund(live, user, {one.split("-")[0]: "5", two.split("-")[0]: "5", "USD": "100"})
    watch = await connect(live, sockets, user.token)
    for channel in ("trades", "ticker", "book"):
        r = await watch.call("subscribe", {"channel": channel, "markets": [one, two]})
        assert r["status"] == 200
    await watch.quiet(0.3)
    for channel in ("trades", "ticker", "book"):
        r = await watch.call("unsubscribe", {"channel": channel, "markets": [one]})
        assert r["status"] == 200 and r["result"] == {"channel": channel, "markets": [one]}
    after = len(watch.frames)
    ws = await connect(live, sockets, user.token)
    taker = await new_user(live)
    await fund(live, taker, {"USD": "100"})
    tws = await connect(live, sockets, taker.token)
    for market in (one, two):
        await placed(ws, limit(market, "sell", "1", "2"))
        await placed(tws, limit(market, "buy", "1", "2"))
    await watch.until(lambda m: m.get("channel") == "trades" and m["market"] == two)
    await watch.quiet(0.5)
    later = watch.frames[after:]
    assert not [m for m in later if m.get("market") == one], later
    assert {m["channel"] for m in later if m.get("market") == two} >= {"trades", "ticker", "book"}


# -- envelope, types and query filters --------------------------------------------------


async def test_envelope_edge_cases(live: Exchange, sockets: list[Raw]) -> None:
    user = await new_user(live)
    ws = await connect(live, sockets, user.token)
    assert (await ws.call("ping", id=-5))["id"] == -5
    await ws.send({"id": "p", "method": "ping", "params": None})
    answer = await ws.until(is_answer)
    assert (
        answer["id"] == "p" and answer["status"] == 200 and isinstance(answer["result"]["ts"], int)
    )
    for frame, why in (
        ('{"id": 100000000000000000000000, "method": "ping"}', "id beyond 64 bits"),
        ('[{"id": 1, "method": "ping"}]', "not an object"),
        ('{"id": 1, "method": "ping", "params": {}, "extra": 1}', "unknown envelope key"),
        ('{"id": 2, "method": "ping", "params": [1]}', "params not an object"),
        ('{"id": 3}', "no method"),
    ):
        await ws.send(frame)
        got = await ws.until(is_answer)
        assert error_of(got) == (400, "INVALID_PARAM"), (why, got)
    assert (await ws.call("ping"))["status"] == 200


async def test_integers_are_json_integers(live: Exchange, sockets: list[Raw]) -> None:
    user = await new_user(live)
    ws = await connect(live, sockets, user.token)
    for depth in (5.0, True, "5"):
        answer = await ws.call("subscribe", {"channel": "book", "markets": ["BTC-USD"],
                                             "depth": depth})  # fmt: skip
        assert error_of(answer) == (400, "INVALID_PARAM"), depth
    async with live.admin() as admin:
        for scale in (8.0, "8"):
            r = await admin.post("/admin/assets", json={"symbol": "ZZ9", "scale": scale})
            assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_PARAM"


async def test_order_params_are_strict(live: Exchange, sockets: list[Raw]) -> None:
    market = await new_market(live)
    user = await new_user(live)
    await fund(live, user, {"USD": "100"})
    ws = await connect(live, sockets, user.token)
    refused = [
        limit(market, "buy", "1", "1", post_only=1),
        limit(market, "buy", "1", "1", post_only="true"),
        limit(market, "buy", "1", "1", post_only=True, time_in_force="IOC"),
        limit(market, "BUY", "1", "1"),
        limit(market, "buy", "1", "1", time_in_force="gtc"),
        limit(market, "buy", "1", "1e1"),
        limit(market, "buy", "1", ".5"),
        limit(market, "buy", "01", "1"),
        limit(market, "buy", " 1", "1"),
        limit(market, "buy", "1", "1", client_order_id="x" * 37),
        limit(market, "buy", "1", "1", quote_amount="1"),
        {"market": market, "side": "sell", "type": "market", "quote_amount": "1"},
        {"market": market, "side": "buy", "type": "market", "amount": "1", "quote_amount": "1"},
        {"market": market, "side": "buy", "type": "limit", "amount": "1"},
    ]
    for params in refused:
        assert error_of(await ws.call("order.place", params)) == (400, "INVALID_PARAM"), params
    ok = await placed(ws, limit(market, "buy", "1.000000", "1.0000", client_order_id="x" * 36))
    assert (ok["amount"], ok["price"], ok["client_order_id"]) == ("1.000", "1.00", "x" * 36)
    assert [o["id"] for o in (await ws.call("orders.open"))["result"]] == [ok["id"]]


async def test_empty_query_values_mean_not_given(live: Exchange) -> None:
    """PROTOCOL.md writes ``GET /orders?status=open&market=``: an empty value is no filter."""
    market = await new_market(live)
    user = await new_user(live)
    await fund(live, user, {"USD": "100"})
    async with live.http("a", user.token) as http:
        mine = (await http.post("/orders", json=limit(market, "buy", "1", "1"))).json()
        r = await http.get("/orders?status=open&market=")
        assert r.status_code == 200 and [o["id"] for o in r.json()] == [mine["id"]]
        r = await http.get(f"/markets/{market}/book?depth=")
        assert r.status_code == 200 and r.json()["bids"] == [["1.00", "1.000"]]
        assert (await http.get(f"/markets/{market}/trades?limit=")).json() == []
        assert (await http.get("/fills?market=&limit=")).status_code == 200
        assert (await http.delete("/orders?market=")).json()[0]["id"] == mine["id"]


async def test_market_filters_name_listed_markets(live: Exchange, sockets: list[Raw]) -> None:
    """A filter on a market that does not exist is UNKNOWN_MARKET everywhere, not []."""
    user = await new_user(live)
    async with live.http("a", user.token) as http:
        for path, query in (
            ("/orders", {"market": "NOPE-USD"}),
            ("/orders", {"status": "closed", "market": "NOPE-USD"}),
            ("/orders", {"status": "all", "market": "NOPE-USD"}),
            ("/fills", {"market": "NOPE-USD"}),
        ):
            r = await http.get(path, params=query)
            assert r.status_code == 400, (path, query, r.text)
            assert r.json()["error"]["code"] == "UNKNOWN_MARKET"
        assert (await http.get("/fills", params={"market": "BTC-USD"})).status_code == 200
    ws = await connect(live, sockets, user.token)
    answer = await ws.call("subscribe", {"channel": "orders", "markets": ["NOPE-USD"]})
    assert error_of(answer) == (400, "UNKNOWN_MARKET")
    for method in ("orders.open", "order.cancel_all"):
        assert error_of(await ws.call(method, {"market": "NOPE-USD"})) == (400, "UNKNOWN_MARKET")
    answer = await ws.call("subscribe", {"channel": "orders", "markets": ["BTC-USD"]})
    assert answer["result"] == {"channel": "orders", "markets": ["BTC-USD"]}


async def test_unsubscribing_one_market_of_the_orders_channel_keeps_the_others(
    live: Exchange, sockets: list[Raw]
) -> None:
    one, two = await new_market(live), await new_market(live)
    user = await new_user(live)
    await fund(live, user, {"USD": "100"})
    ws = await connect(live, sockets, user.token)
    answer = await ws.call("subscribe", {"channel": "orders", "markets": [one, two]})
    assert answer["status"] == 200
    answer = await ws.call("unsubscribe", {"channel": "orders", "markets": [one]})
    assert answer["result"] == {"channel": "orders", "markets": [one]}
    await placed(ws, limit(one, "buy", "1", "1"))  # no push: one is unsubscribed
    second = await placed(ws, limit(two, "buy", "1", "1"))
    push = await ws.until(lambda m: m.get("channel") == "orders")
    assert push["order"]["id"] == second["id"]
    answer = await ws.call("unsubscribe", {"channel": "orders", "markets": [two]})
    assert answer["status"] == 200
    await placed(ws, limit(two, "buy", "1", "2"))
    await ws.quiet(0.3)
    assert [m["order"]["id"] for m in ws.frames if m.get("channel") == "orders"] == [second["id"]]


async def test_subscribing_the_orders_channel_again_adds_markets(
    live: Exchange, sockets: list[Raw]
) -> None:
    """Like the public channels: a second subscribe widens the filter, never narrows it."""
    one, two = await new_market(live), await new_market(live)
    user = await new_user(live)
    await fund(live, user, {"USD": "100"})
    ws = await connect(live, sockets, user.token)
    for market in (one, two):
        answer = await ws.call("subscribe", {"channel": "orders", "markets": [market]})
        assert answer["result"] == {"channel": "orders", "markets": [market]}
    placed_ids = [(await placed(ws, limit(m, "buy", "1", "1")))["id"] for m in (one, two)]

    def pushed(order_id: str) -> Callable[[Msg], bool]:
        return lambda m: m.get("channel") == "orders" and m["order"]["id"] == order_id

    for order_id in placed_ids:
        await ws.until(pushed(order_id))
