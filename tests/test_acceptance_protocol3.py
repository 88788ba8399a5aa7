"""Third black-box acceptance pass over /work/shared/PROTOCOL.md: what a client reads
*right after* an answer (read-your-writes), with no sleep or poll in between.

Balances exact to the unit (fees in bps of what each side receives, rounded up),
open orders, the order by id, fills and history, private pushes (only to the right
user, also on the other web node), conservation of every asset across a random burst,
book / trades / ticker against the open orders. Raw WebSocket + ``httpx`` only;
money as ``Decimal`` parsed from strings, never float.

Targets the e2e session exchange, or a live one when ``HFTX_ACCEPT_URL`` is set.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from decimal import ROUND_CEILING, Decimal
from typing import Any

from tests.test_e2e_support import (
    Exchange,
    User,
    Ws,
    connect,
    fund,
    limit,
    new_market,
    new_user,
)

pytest_plugins = ["tests.test_e2e_support"]

Msg = dict[str, Any]
D = Decimal
UNIT = D("0.00000001")  # every asset of these tests has scale 8
MAKER_BPS, TAKER_BPS = 10, 20  # new_market's fees


def fee(size: str | D, price: str | D, bps: int, receives: str) -> D:
    """PROTOCOL.md's fee: bps of what the side receives, rounded up to the unit."""
    received = D(size) if receives == "base" else D(size) * D(price)
    return (received * bps / 10000).quantize(UNIT, rounding=ROUND_CEILING)


async def place(ws: Ws, params: Msg) -> Msg:
    answer = await ws.request("order.place", params)
    assert answer["status"] == 200, answer
    return dict(answer["result"])


Bal = dict[str, tuple[D, D, D]]


def as_bal(rows: list[Msg]) -> Bal:
    out = {r["asset"]: (D(r["free"]), D(r["locked"]), D(r["total"])) for r in rows}
    for free, locked, total in out.values():
        assert free + locked == total
    return out


async def http_bal(live: Exchange, user: User, node: str = "a") -> Bal:
    async with live.http(node, user.token) as http:
        r = await http.get("/balances")
        assert r.status_code == 200, r.text
        return as_bal(r.json())


async def ws_bal(ws: Ws) -> Bal:
    answer = await ws.request("balances.get")
    assert answer["status"] == 200, answer
    return as_bal(answer["result"])


async def both_bal(live: Exchange, user: User, ws: Ws, want: dict[str, tuple[Any, Any]]) -> None:
    """``balances.get`` and ``GET /balances`` (both nodes) show exactly ``want``
    (asset -> (free, locked)), right now."""
    views = [await ws_bal(ws), await http_bal(live, user, "a"), await http_bal(live, user, "b")]
    for view in views:
        got = {a: view[a][:2] for a in want}
        assert got == {a: (D(f), D(lk)) for a, (f, lk) in want.items()}, views


async def get_json(live: Exchange, user: User, path: str, node: str = "a", **params: Any) -> Any:
    async with live.http(node, user.token) as http:
        r = await http.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()


async def setup(live: Exchange, n: int, base_amt: str, usd_amt: str) -> tuple[str, list[User]]:
    market = await new_market(live)
    base = market.split("-")[0]
    users = [await new_user(live) for _ in range(n)]
    for user in users:
        await fund(live, user, {base: base_amt, "USD": usd_amt})
    return market, users


# -- orders: balances, order views and pushes right after the answer ---------------------


async def test_rest_then_partial_ioc_every_view_agrees_at_once(
    live: Exchange, sockets: list[Ws]
) -> None:
    market, (maker, taker, other) = await setup(live, 3, "10", "10000")
    base = market.split("-")[0]
    # the maker watches from node b, a bystander too: pushes reach only the maker
    mwatch = await connect(live, sockets, maker, "b")
    owatch = await connect(live, sockets, other, "b")
    for w in (mwatch, owatch):
        for channel in ("orders", "balances"):
            assert (await w.request("subscribe", {"channel": channel}))["status"] == 200
    mws, tws = await connect(live, sockets, maker), await connect(live, sockets, taker)

    ask = await place(mws, limit(market, "sell", "2", "100.01", client_order_id="ask-1"))
    assert (ask["status"], ask["remaining"]) == ("NEW", "2.000")
    await both_bal(live, maker, mws, {base: ("8", "2"), "USD": ("10000", "0")})
    opened = (await mws.request("orders.open", {"market": market}))["result"]
    assert [(o["id"], o["remaining"]) for o in opened] == [(ask["id"], "2.000")]
    http_open = await get_json(live, maker, "/orders", "b", status="open", market=market)
    assert [o["id"] for o in http_open] == [ask["id"]]

    ioc = await place(tws, limit(market, "buy", "3.5", "100.02", time_in_force="IOC"))
    assert (ioc["status"], ioc["filled"], ioc["remaining"]) == ("EXPIRED", "2.000", "0.000")
    assert D(ioc["cost"]) == D("200.02") and ioc["average"] == "100.01"
    [fill] = ioc["fills"]
    tfee, mfee = fee("2", "100.01", TAKER_BPS, "base"), fee("2", "100.01", MAKER_BPS, "quote")
    assert (D(fill["fee"]), fill["fee_asset"], fill["maker_order_id"]) == (tfee, base, ask["id"])
    # the taker's hold of 3.5 x 100.02 is gone at once; the maker's fill is credited
    await both_bal(live, taker, tws, {base: (D(12) - tfee, 0), "USD": (D("9799.98"), 0)})
    await both_bal(live, maker, mws, {base: ("8", "0"), "USD": (D("10200.02") - mfee, 0)})
    assert (await mws.request("orders.open"))["result"] == []
    assert await get_json(live, maker, "/orders", status="open") == []
    for user, oid, status in ((maker, ask["id"], "FILLED"), (taker, ioc["id"], "EXPIRED")):
        for node in ("a", "b"):
            order = await get_json(live, user, f"/orders/{oid}", node)
            assert (order["status"], order["filled"], order["remaining"]) == (
                status, "2.000", "0.000")  # fmt: skip
        every = await get_json(live, user, "/orders", status="all", market=market)
        assert [(o["id"], o["status"]) for o in every] == [(oid, status)]
        closed = await get_json(live, user, "/orders", status="closed")
        assert [(o["id"], o["status"]) for o in closed] == [(oid, status)]
    by_client = await get_json(live, maker, "/orders/client:ask-1")
    assert by_client["status"] == "FILLED"
    tfills = await get_json(live, taker, "/fills", market=market)
    mfills = await get_json(live, maker, "/fills", "b", market=market)
    assert [(f["order_id"], f["liquidity"], D(f["fee"]), f["fee_asset"]) for f in tfills] == [
        (ioc["id"], "taker", tfee, base)]  # fmt: skip
    assert [(f["order_id"], f["liquidity"], D(f["fee"]), f["fee_asset"]) for f in mfills] == [
        (ask["id"], "maker", mfee, "USD")]  # fmt: skip
    assert tfills[0]["trade_id"] == mfills[0]["trade_id"] == fill["trade_id"]
    assert D(tfills[0]["cost"]) == D("200.02")

    # pushes: the maker's socket on node b gets its reports and the final balances
    await mwatch.wait_push(
        lambda m: m.get("exec_type") == "TRADE" and m["order"]["id"] == ask["id"]
    )
    want_usd = D("10200.02") - mfee
    await mwatch.wait_push(
        lambda m: m.get("channel") == "balances" and m["asset"] == "USD"
        and D(m["total"]) == want_usd and D(m["locked"]) == 0
    )  # fmt: skip
    await mwatch.wait_push(
        lambda m: m.get("channel") == "balances" and m["asset"] == base
        and (D(m["free"]), D(m["locked"])) == (8, 0)
    )  # fmt: skip
    assert await owatch.request("ping") and owatch.pushes == []


async def test_market_orders_by_amount_and_quote_amount_settle_exactly(
    live: Exchange, sockets: list[Ws]
) -> None:
    market, (maker, taker) = await setup(live, 2, "10", "1000")
    base = market.split("-")[0]
    mws, tws = await connect(live, sockets, maker), await connect(live, sockets, taker)
    await place(mws, limit(market, "sell", "1", "10"))
    await place(mws, limit(market, "sell", "1", "12.5"))
    buy = await place(tws, {"market": market, "side": "buy", "type": "market", "amount": "1.5"})
    assert (buy["status"], buy["filled"], D(buy["cost"])) == ("FILLED", "1.500", D("16.25"))
    tfee = fee("1", "10", TAKER_BPS, "base") + fee("0.5", "12.5", TAKER_BPS, "base")
    # the 5 % protection hold is released at once
    await both_bal(live, taker, tws, {base: (D("11.5") - tfee, 0), "USD": (D("983.75"), 0)})
    mfee = fee("1", "10", MAKER_BPS, "quote") + fee("0.5", "12.5", MAKER_BPS, "quote")
    await both_bal(live, maker, mws, {base: ("8", "0.5"), "USD": (D("1016.25") - mfee, 0)})

    qbuy = {"market": market, "side": "buy", "type": "market", "quote_amount": "3.75"}
    q = await place(tws, qbuy)
    assert (q["filled"], D(q["cost"])) == ("0.300", D("3.75"))
    tfee += fee("0.3", "12.5", TAKER_BPS, "base")
    await both_bal(live, taker, tws, {base: (D("11.8") - tfee, 0), "USD": (D("980"), 0)})

    await place(tws, limit(market, "buy", "2", "9"))
    sell = await place(mws, {"market": market, "side": "sell", "type": "market", "amount": "0.7"})
    assert (sell["status"], D(sell["cost"])) == ("FILLED", D("6.3"))
    mfee += fee("0.3", "12.5", MAKER_BPS, "quote") + fee("0.7", "9", TAKER_BPS, "quote")
    await both_bal(live, maker, mws, {base: (D("7.3"), D("0.2")), "USD": (D("1026.3") - mfee, 0)})
    tfee += fee("0.7", "9", MAKER_BPS, "base")
    await both_bal(live, taker, tws, {base: (D("12.5") - tfee, 0), "USD": (D(962), D("11.7"))})


async def test_a_buy_that_crosses_then_rests_holds_only_its_rest(
    live: Exchange, sockets: list[Ws]
) -> None:
    """A limit buy at 12 that takes 1 at 10 and rests 1 holds 12, not 14: the price
    improvement is free at once (Binance: locked = remaining x price); also when the
    match stops at an own order (STP cancel_oldest)."""
    market, (maker, taker) = await setup(live, 2, "10", "1000")
    base = market.split("-")[0]
    mws, tws = await connect(live, sockets, maker), await connect(live, sockets, taker, "b")
    await place(mws, limit(market, "sell", "1", "10"))
    buy = await place(tws, limit(market, "buy", "2", "12"))
    assert (buy["status"], buy["remaining"], D(buy["cost"])) == ("PARTIALLY_FILLED", "1.000", 10)
    tfee = fee("1", "10", TAKER_BPS, "base")
    await both_bal(live, taker, tws, {base: (D(11) - tfee, 0), "USD": ("978", "12")})
    await place(mws, limit(market, "sell", "0.5", "11"))  # fills the resting buy at 12
    tfee += fee("0.5", "12", MAKER_BPS, "base")
    await both_bal(live, taker, tws, {base: (D("11.5") - tfee, 0), "USD": ("978", "6")})

    await place(mws, limit(market, "sell", "1", "20"))
    mine = await place(tws, limit(market, "sell", "1", "30"))
    stp = await place(tws, limit(market, "buy", "2", "30", stp="cancel_oldest"))
    assert (stp["status"], stp["remaining"]) == ("PARTIALLY_FILLED", "1.000")
    assert (await get_json(live, taker, f"/orders/{mine['id']}"))["status"] == "CANCELED"
    tfee += fee("1", "20", TAKER_BPS, "base")
    await both_bal(live, taker, tws, {base: (D("12.5") - tfee, 0), "USD": ("928", "36")})


async def test_orders_that_do_not_rest_leave_no_hold_and_say_so_everywhere(
    live: Exchange, sockets: list[Ws]
) -> None:
    market, (maker, taker) = await setup(live, 2, "10", "1000")
    base = market.split("-")[0]
    mws, tws = await connect(live, sockets, maker), await connect(live, sockets, taker)
    ask = await place(mws, limit(market, "sell", "1", "10"))
    fok = await place(tws, limit(market, "buy", "2", "10", time_in_force="FOK"))
    assert (fok["status"], fok["filled"], fok["fills"]) == ("EXPIRED", "0.000", [])
    await both_bal(live, taker, tws, {base: ("10", "0"), "USD": ("1000", "0")})
    assert (await get_json(live, taker, f"/orders/{fok['id']}"))["status"] == "EXPIRED"
    every = await get_json(live, taker, "/orders", status="all")
    assert [(o["id"], o["status"]) for o in every] == [(fok["id"], "EXPIRED")]
    assert await get_json(live, taker, "/fills") == []

    answer = await tws.request("order.place", limit(market, "buy", "1", "10", post_only=True))
    assert (answer["status"], answer["error"]["code"]) == (400, "POST_ONLY_WOULD_TAKE")
    await both_bal(live, taker, tws, {base: ("10", "0"), "USD": ("1000", "0")})
    assert await get_json(live, taker, "/orders", status="open") == []

    # self-trade prevention: each mode releases exactly what it cancels
    assert (await mws.request("order.cancel", {"order_id": ask["id"]}))["status"] == 200
    mine = await place(tws, limit(market, "sell", "1", "20"))
    await both_bal(live, taker, tws, {base: ("9", "1"), "USD": ("1000", "0")})
    newest = await place(tws, limit(market, "buy", "1", "20", stp="cancel_newest"))
    assert newest["status"] == "CANCELED"
    await both_bal(live, taker, tws, {base: ("9", "1"), "USD": ("1000", "0")})
    oldest = await place(tws, limit(market, "buy", "1", "20", stp="cancel_oldest"))
    assert oldest["status"] == "NEW" and oldest["fills"] == []
    assert (await get_json(live, taker, f"/orders/{mine['id']}"))["status"] == "CANCELED"
    await both_bal(live, taker, tws, {base: ("10", "0"), "USD": ("980", "20")})
    await place(tws, limit(market, "sell", "0.5", "25"))
    both = await place(tws, limit(market, "buy", "1", "25", stp="cancel_both"))
    assert both["status"] == "CANCELED"
    # the resting sell at 25 is canceled too; the buy at 20 is still there
    opened = (await tws.request("orders.open"))["result"]
    assert [o["id"] for o in opened] == [oldest["id"]]
    await both_bal(live, taker, tws, {base: ("10", "0"), "USD": ("980", "20")})
    statuses = {o["id"]: o["status"] for o in await get_json(live, taker, "/orders", status="all")}
    assert statuses[newest["id"]] == statuses[both["id"]] == statuses[mine["id"]] == "CANCELED"
    assert statuses[oldest["id"]] == "NEW" and statuses[fok["id"]] == "EXPIRED"
    assert (await get_json(live, maker, f"/orders/{ask['id']}"))["status"] == "CANCELED"


async def test_every_cancel_path_releases_the_hold_at_once(
    live: Exchange, sockets: list[Ws]
) -> None:
    market, (user,) = await setup(live, 1, "10", "1000")
    base = market.split("-")[0]
    other_market = await new_market(live)
    ws = await connect(live, sockets, user)
    watch = await connect(live, sockets, user, "b")
    assert (await watch.request("subscribe", {"channel": "orders"}))["status"] == 200

    a = await place(ws, limit(market, "buy", "1.5", "10.01"))
    answer = await ws.request("order.cancel", {"order_id": a["id"]})
    assert answer["status"] == 200 and answer["result"]["status"] == "CANCELED"
    await both_bal(live, user, ws, {base: ("10", "0"), "USD": ("1000", "0")})
    assert (await get_json(live, user, f"/orders/{a['id']}", "b"))["status"] == "CANCELED"

    b = await place(ws, limit(market, "sell", "1", "30"))
    c = await place(ws, limit(market, "buy", "2", "5", client_order_id="c-1"))
    o = await place(ws, limit(other_market, "buy", "1", "7"))
    canceled = (await ws.request("order.cancel_all", {"market": market}))["result"]
    assert sorted(x["id"] for x in canceled) == sorted([b["id"], c["id"]])
    assert {x["status"] for x in canceled} == {"CANCELED"}
    await both_bal(live, user, ws, {base: ("10", "0"), "USD": ("993", "7")})
    assert [x["id"] for x in (await ws.request("orders.open"))["result"]] == [o["id"]]
    assert (await get_json(live, user, "/orders/client:c-1"))["status"] == "CANCELED"

    d = await place(ws, limit(market, "sell", "3", "11"))
    async with live.http("b", user.token) as http:
        r = await http.delete("/orders", params={"market": market})
        assert r.status_code == 200 and [x["id"] for x in r.json()] == [d["id"]]
    await both_bal(live, user, ws, {base: ("10", "0"), "USD": ("993", "7")})
    async with live.http("a", user.token) as http:
        r = await http.delete(f"/orders/{o['id']}")
        assert r.status_code == 200 and r.json()["status"] == "CANCELED"
    await both_bal(live, user, ws, {base: ("10", "0"), "USD": ("1000", "0")})
    assert await get_json(live, user, "/orders", status="open") == []
    every = await get_json(live, user, "/orders", status="all")
    assert sorted((x["id"], x["status"], x["remaining"]) for x in every) == sorted(
        (x["id"], "CANCELED", "0.000") for x in (a, b, c, d, o)
    )
    for x in (a, b, c, d, o):
        await watch.wait_push(
            lambda m, i=x["id"]: m.get("exec_type") == "CANCELED" and m["order"]["id"] == i
        )


# -- wallets ----------------------------------------------------------------------------


async def test_deposit_transfer_and_withdrawals_show_at_once(
    live: Exchange, sockets: list[Ws]
) -> None:
    payer, payee = await new_user(live), await new_user(live)
    pws, qws = await connect(live, sockets, payer), await connect(live, sockets, payee, "b")
    assert (await qws.request("subscribe", {"channel": "balances"}))["status"] == 200
    await fund(live, payer, {"USD": "100.5"})
    await both_bal(live, payer, pws, {"USD": ("100.5", "0")})
    addr = {x["asset"]: x["address"] for x in await get_json(live, payee, "/addresses")}
    for i in range(5):
        async with live.http("b" if i % 2 else "a", payer.token) as http:
            body = {"transfer_id": uuid.uuid4().hex, "asset": "USD", "amount": "1.25",
                    "to_address": addr["USD"]}  # fmt: skip
            r = await http.post("/transfers", json=body)
            assert r.status_code == 200 and r.json()["status"] == "COMPLETED", r.text
        paid = D("1.25") * (i + 1)
        await both_bal(live, payee, qws, {"USD": (paid, "0")})
        await both_bal(live, payer, pws, {"USD": (D("100.5") - paid, "0")})
    await qws.wait_push(lambda m: m.get("channel") == "balances" and D(m["total"]) == D("6.25"))

    async def withdraw(wid: str, amount: str) -> None:
        body = {"withdrawal_id": wid, "asset": "USD", "amount": amount, "address": "ext1"}
        answer = await pws.request("withdrawals.create", body)
        assert answer["status"] == 200 and answer["result"]["status"] == "PENDING", answer

    w1, w2 = uuid.uuid4().hex, uuid.uuid4().hex
    await withdraw(w1, "10")
    await withdraw(w2, "20.25")
    await both_bal(live, payer, pws, {"USD": ("64", "30.25")})
    async with live.admin("b") as admin:
        r = await admin.post(f"/admin/withdrawals/{w1}/complete")
        assert r.status_code == 200 and r.json()["status"] == "COMPLETED", r.text
        await both_bal(live, payer, pws, {"USD": ("64", "20.25")})
        r = await admin.post(f"/admin/withdrawals/{w2}/reject")
        assert r.status_code == 200 and r.json()["status"] == "REJECTED", r.text
    await both_bal(live, payer, pws, {"USD": ("84.25", "0")})
    listed = await get_json(live, payer, "/withdrawals")
    assert [(x["withdrawal_id"], x["status"]) for x in listed] == [
        (w1, "COMPLETED"), (w2, "REJECTED")]  # fmt: skip


# -- a random burst: conservation, holds, book, trades, ticker --------------------------


async def test_a_random_burst_conserves_every_asset_and_the_views_agree(
    live: Exchange, sockets: list[Ws]
) -> None:
    market, users = await setup(live, 3, "50", "5000")
    base = market.split("-")[0]
    socks = [await connect(live, sockets, u, "ab"[i % 2]) for i, u in enumerate(users)]
    rng = random.Random(20261126)

    async def trader(ws: Ws, n: int) -> list[Msg]:
        answers = []
        for _ in range(n):
            side = rng.choice(["buy", "sell"])
            amount = f"{rng.randint(1, 2000) / 1000:.3f}"
            price = f"{rng.randint(9500, 10500) / 100:.2f}"
            kind = rng.random()
            if kind < 0.6:
                params = limit(market, side, amount, price)
            elif kind < 0.75:
                params = limit(market, side, amount, price, time_in_force="IOC")
            elif kind < 0.8:
                params = limit(market, side, amount, price, time_in_force="FOK")
            elif kind < 0.9:
                params = {"market": market, "side": side, "type": "market", "amount": amount}
            else:
                params = limit(market, side, amount, price, stp="cancel_oldest")
            answer = await ws.request("order.place", params)
            assert answer["status"] == 200 or answer["error"]["code"] == "INSUFFICIENT_FUNDS"
            if answer["status"] == 200:
                answers.append(answer["result"])
            if rng.random() < 0.1:
                opened = (await ws.request("orders.open"))["result"]
                if opened:
                    victim = rng.choice(opened)["id"]
                    gone = await ws.request("order.cancel", {"order_id": victim})
                    # it may have filled meanwhile (another trader runs concurrently)
                    assert gone["status"] == 200 or gone["error"]["code"] == "UNKNOWN_ORDER"
        return answers

    results = await asyncio.gather(*(trader(ws, 60) for ws in socks))
    assert sum(len(r) for r in results) > 100

    totals: dict[str, D] = defaultdict(D)
    fees: dict[str, D] = defaultdict(D)
    trade_ids: set[int] = set()
    book: dict[str, dict[D, D]] = {"buy": defaultdict(D), "sell": defaultdict(D)}
    for user, ws in zip(users, socks, strict=True):
        bal = await ws_bal(ws)
        other = await http_bal(live, user, "b")
        assert {a: bal[a] for a in (base, "USD")} == {a: other[a] for a in (base, "USD")}
        fills = await get_json(live, user, "/fills", market=market, limit=1000)
        answered = {f["trade_id"] for r in results[socks.index(ws)] for f in r["fills"]}
        assert answered <= {f["trade_id"] for f in fills}
        assert [(f["ts"], f["trade_id"]) for f in fills] == sorted(
            ((f["ts"], f["trade_id"]) for f in fills), reverse=True)  # fmt: skip
        for f in fills:
            fees[f["fee_asset"]] += D(f["fee"])
            trade_ids.add(f["trade_id"])
        opened = (await ws.request("orders.open", {"market": market}))["result"]
        assert opened == await get_json(live, user, "/orders", status="open", market=market)
        held = {base: D(0), "USD": D(0)}
        for o in opened:
            book[o["side"]][D(o["price"])] += D(o["remaining"])
            assert D(o["remaining"]) == D(o["amount"]) - D(o["filled"]) > 0
            if o["side"] == "sell":
                held[base] += D(o["remaining"])
            else:
                held["USD"] += D(o["remaining"]) * D(o["price"])
        assert {a: bal[a][1] for a in held} == held, (user.user_id, opened)
        for asset in (base, "USD"):
            totals[asset] += bal[asset][2]
    assert totals[base] + fees[base] == 150
    assert totals["USD"] + fees["USD"] == 15000

    async with live.http("b") as http:
        r = await http.get(f"/markets/{market}/book", params={"depth": 1000})
        snap = r.json()
        trades = (await http.get(f"/markets/{market}/trades", params={"limit": 1000})).json()
        ticker = (await http.get(f"/markets/{market}/ticker")).json()
        candles = (await http.get(f"/markets/{market}/candles", params={"interval": "1h"})).json()
    volume = sum((D(t["size"]) for t in trades), D(0))
    assert D(ticker["volume_24h"]) == volume == sum((D(c["volume"]) for c in candles), D(0))
    assert sum(c["trades"] for c in candles) == len(trades)
    for side, key in (("buy", "bids"), ("sell", "asks")):
        want = sorted(((p, s) for p, s in book[side].items()), reverse=side == "buy")
        assert [(D(p), D(s)) for p, s in snap[key]] == want
    assert {t["trade_id"] for t in trades} == trade_ids
    assert [t["trade_id"] for t in trades] == sorted(trade_ids, reverse=True)
    if trades:
        assert (ticker["last"], ticker["last_trade_id"]) == (trades[0]["price"], max(trade_ids))
    top_bid, top_ask = (snap["bids"] or [[None, None]])[0], (snap["asks"] or [[None, None]])[0]
    assert [ticker["best_bid"], ticker["best_bid_size"]] == top_bid
    assert [ticker["best_ask"], ticker["best_ask_size"]] == top_ask


async def test_a_partly_filled_maker_and_the_market_views_right_after_the_trade(
    live: Exchange, sockets: list[Ws]
) -> None:
    market, (maker, taker) = await setup(live, 2, "10", "1000")
    base = market.split("-")[0]
    watch = await connect(live, sockets, maker, "b")
    for channel in ("orders", "balances"):
        assert (await watch.request("subscribe", {"channel": channel}))["status"] == 200
    mws, tws = await connect(live, sockets, maker), await connect(live, sockets, taker, "b")
    bid = await place(mws, limit(market, "buy", "3", "20.5"))
    sell = await place(tws, limit(market, "sell", "1.2", "20"))
    assert (sell["status"], D(sell["cost"]), sell["average"]) == ("FILLED", D("24.6"), "20.50")
    trade_id = sell["fills"][0]["trade_id"]
    for node in ("a", "b"):
        live_bid = await get_json(live, maker, f"/orders/{bid['id']}", node)
        assert (live_bid["status"], live_bid["filled"], live_bid["remaining"]) == (
            "PARTIALLY_FILLED", "1.200", "1.800")  # fmt: skip
        [every] = await get_json(live, maker, "/orders", node, status="all", market=market)
        assert (every["id"], every["status"], every["filled"]) == (
            bid["id"], "PARTIALLY_FILLED", "1.200")  # fmt: skip
    [opened] = (await mws.request("orders.open"))["result"]
    assert (opened["filled"], D(opened["cost"])) == ("1.200", D("24.6"))
    mfee = fee("1.2", "20.5", MAKER_BPS, "base")
    await both_bal(live, maker, mws, {base: (D("11.2") - mfee, 0), "USD": ("938.5", "36.9")})
    async with live.http("b") as http:
        ticker = (await http.get(f"/markets/{market}/ticker")).json()
        trades = (await http.get(f"/markets/{market}/trades")).json()
        book = (await http.get(f"/markets/{market}/book")).json()
        candles = (await http.get(f"/markets/{market}/candles", params={"interval": "1m"})).json()
    assert (ticker["last"], ticker["last_trade_id"], D(ticker["volume_24h"])) == (
        "20.50", trade_id, D("1.2"))  # fmt: skip
    assert (ticker["best_bid"], ticker["best_bid_size"], ticker["best_ask"]) == (
        "20.50", "1.800", None)  # fmt: skip
    assert [(t["trade_id"], t["price"], t["size"], t["taker_side"]) for t in trades] == [
        (trade_id, "20.50", "1.200", "sell")]  # fmt: skip
    assert (book["bids"], book["asks"]) == ([["20.50", "1.800"]], [])
    assert [(D(c["volume"]), D(c["quote_volume"]), c["trades"]) for c in candles] == [
        (D("1.2"), D("24.6"), 1)]  # fmt: skip
    report = await watch.wait_push(lambda m: m.get("exec_type") == "TRADE")
    assert (report["order"]["status"], report["order"]["remaining"], report["liquidity"]) == (
        "PARTIALLY_FILLED", "1.800", "maker")  # fmt: skip
    assert (D(report["fee"]), report["fee_asset"]) == (mfee, base)
    # the last balances push of each asset is the state read now
    await watch.wait_push(lambda m: m.get("asset") == base and D(m["total"]) == D("11.2") - mfee)
    await asyncio.sleep(0.3)  # let any stray, older push arrive: none may follow
    last = {m["asset"]: m for m in watch.pushes if m.get("channel") == "balances"}
    now = await ws_bal(mws)
    assert {a: (D(m["free"]), D(m["locked"]), D(m["total"])) for a, m in last.items()} == {
        a: now[a] for a in last}  # fmt: skip


async def test_a_new_asset_is_listed_on_every_node_at_once(live: Exchange) -> None:
    """An asset created through node a: GET /assets and GET /balances ("one row per
    listed asset, zeros included") on node b list it at once."""
    user = await new_user(live)
    async with live.http("b") as http:  # node b has its asset list in hand
        assert (await http.get("/assets")).status_code == 200
    assert await http_bal(live, user, "b")
    market = await new_market(live)  # through node a
    base = market.split("-")[0]
    async with live.http("b") as http:
        assert (await http.get(f"/markets/{market}")).status_code == 200
        assert base in {a["symbol"] for a in (await http.get("/assets")).json()}
    assert base in await http_bal(live, user, "b")


async def test_leftovers_of_market_orders_and_partial_cancels_return_at_once(
    live: Exchange, sockets: list[Ws]
) -> None:
    market, (maker, taker) = await setup(live, 2, "10", "1000")
    base = market.split("-")[0]
    mws, tws = await connect(live, sockets, maker, "b"), await connect(live, sockets, taker)
    await place(mws, limit(market, "sell", "5", "3"))
    # a quote budget of 10 buys 3.333 at 3 (cost 9.999): the 0.001 left is free again
    q = await place(tws, {"market": market, "side": "buy", "type": "market", "quote_amount": "10"})
    assert (q["status"], q["filled"], D(q["cost"])) == ("FILLED", "3.333", D("9.999"))
    tfee = fee("3.333", "3", TAKER_BPS, "base")
    await both_bal(live, taker, tws, {base: (D("13.333") - tfee, 0), "USD": ("990.001", "0")})
    # by amount, more than the book holds: the rest expires, the 5 % hold is released
    m = await place(tws, {"market": market, "side": "buy", "type": "market", "amount": "4"})
    assert (m["status"], m["filled"], D(m["cost"])) == ("EXPIRED", "1.667", D("5.001"))
    tfee += fee("1.667", "3", TAKER_BPS, "base")
    await both_bal(live, taker, tws, {base: (D(15) - tfee, 0), "USD": ("985", "0")})
    mfee = fee("3.333", "3", MAKER_BPS, "quote") + fee("1.667", "3", MAKER_BPS, "quote")
    await both_bal(live, maker, mws, {base: ("5", "0"), "USD": (D(1015) - mfee, 0)})
    # a partly filled sell canceled: the unfilled base returns, filled stays filled
    ask = await place(mws, limit(market, "sell", "2", "4"))
    await place(tws, limit(market, "buy", "0.5", "4"))
    gone = await mws.request("order.cancel", {"order_id": ask["id"]})
    assert (gone["result"]["status"], gone["result"]["filled"], gone["result"]["remaining"]) == (
        "CANCELED", "0.500", "0.000")  # fmt: skip
    mfee += fee("0.5", "4", MAKER_BPS, "quote")
    await both_bal(live, maker, mws, {base: ("4.5", "0"), "USD": (D(1017) - mfee, 0)})
    closed = await get_json(live, maker, "/orders", status="closed", market=market)
    assert [(o["status"], o["filled"], D(o["cost"])) for o in closed if o["id"] == ask["id"]] == [
        ("CANCELED", "0.500", 2)]  # fmt: skip
    assert [o["status"] for o in closed] == ["CANCELED", "FILLED"]  # newest first


async def test_a_buy_over_more_than_200_makers_then_resting_holds_only_its_rest(
    live: Exchange, sockets: list[Ws]
) -> None:
    """The engine matches at most 200 fills per call and continues in another; the
    improvement of the fills after the 200th is held until the order ends."""
    market, (maker, taker) = await setup(live, 2, "10", "1000")
    base = market.split("-")[0]
    mws, tws = await connect(live, sockets, maker), await connect(live, sockets, taker)
    for _ in range(205):
        await place(mws, limit(market, "sell", "0.001", "10"))
    buy = await place(tws, limit(market, "buy", "1.205", "11"))
    assert (buy["status"], buy["filled"], D(buy["cost"])) == (
        "PARTIALLY_FILLED",
        "0.205",
        D("2.05"),
    )
    assert len(buy["fills"]) == 205
    tfee = 205 * fee("0.001", "10", TAKER_BPS, "base")
    await both_bal(live, taker, tws, {base: (D("10.205") - tfee, 0), "USD": ("986.95", "11")})
