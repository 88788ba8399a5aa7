"""Bad input on every field of every method: a clear error code and nothing changed.

For each WebSocket method (and the HTTP bodies that share its schema) every field
gets floats as JSON numbers, NaN, 1e400, negatives, too many decimals, wrong
types, a missing value and an unknown neighbour. Each answer must be a 4xx with a
PROTOCOL.md code, and the caller's balances, open orders and the market (its book
and seq) must be exactly as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from tests.test_e2e_support import Exchange, User, Ws, fund, new_market, new_user, unique

pytest_plugins = ["tests.test_e2e_support"]

RAW = "__raw__"  # placeholder replaced by a raw JSON token (NaN, 1e400) in the frame
CODES = {"INVALID_PARAM", "BAD_PRECISION", "UNKNOWN_MARKET", "UNKNOWN_ORDER", "INSUFFICIENT_FUNDS",
         "DUPLICATE_CLIENT_ORDER_ID"}  # fmt: skip

DECIMAL_BAD: list[Any] = [
    1.5, 1, 0, -1, True, [], {}, [RAW, "NaN"], [RAW, "1e400"], [RAW, "-0.0"],
    "-1", "0.0000000001", "1e5", " 1", "", "0x10", "1,5", "١", "9" * 40, "NaN", "Infinity",
]  # fmt: skip
STRING_BAD: list[Any] = [1, 1.5, True, [], {}, [RAW, "NaN"], "", "x" * 200, "a b", "{m:X}:cfg"]
BOOL_BAD: list[Any] = [1, 0, "true", "false", [], {}, 1.0]
INT_BAD: list[Any] = [1.5, "10", True, -1, 0, [RAW, "10" * 10], [RAW, "1e400"], [], {}]
ENUM_BAD: list[Any] = [1, True, [], {}, "", "BUY", "nope"]


def _is_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def frame(req_id: int, method: str, params: dict[str, Any]) -> str:
    """The request frame; ``[RAW, token]`` values become that raw JSON token."""
    raws: dict[str, str] = {}

    def sub(value: Any) -> Any:
        if isinstance(value, list) and len(value) == 2 and value[0] == RAW:
            key = f"@@{len(raws)}@@"
            raws[key] = value[1]
            return key
        return value

    text = orjson.dumps(
        {"id": req_id, "method": method, "params": {k: sub(v) for k, v in params.items()}}
    ).decode()
    for key, token in raws.items():
        text = text.replace(f'"{key}"', token)
    return text


async def state(exchange: Exchange, user: User, market: str) -> Any:
    async with exchange.http("a", user.token) as http:
        balances = (await http.get("/balances")).json()
        orders = (await http.get("/orders")).json()
        book = (await http.get(f"/markets/{market}/book", params={"depth": 1000})).json()
        withdrawals = (await http.get("/withdrawals")).json()
    book.pop("ts")
    return balances, orders, book, withdrawals


@pytest.fixture
async def setup(exchange: Exchange) -> Any:
    market = await new_market(exchange)
    base = market.split("-")[0]
    user, other = await new_user(exchange), await new_user(exchange)
    await fund(exchange, user, {"USD": "1000", base: "10"})
    ws = await Ws.connect(exchange.ws_url("a"), user.token)
    resting = await ws.request(
        "order.place",
        {"market": market, "side": "buy", "type": "limit", "amount": "1", "price": "5",
         "client_order_id": "resting-1"},
    )  # fmt: skip
    assert resting["status"] == 200
    async with exchange.http("a", other.token) as http:
        to_address = {a["asset"]: a["address"] for a in (await http.get("/addresses")).json()}
    yield exchange, user, ws, market, resting["result"]["id"], to_address["USD"]
    await ws.close()


def cases(valid: dict[str, Any], fields: dict[str, list[Any]], required: set[str]) -> Any:
    """(field, params) for every bad value of every field, plus missing and unknown."""
    for name, bad_values in fields.items():
        for bad in bad_values:
            yield name, {**valid, name: bad}
        if name in required:
            yield name, {k: v for k, v in valid.items() if k != name}
            yield name, {**valid, name: None}
    yield "unknown", {**valid, "unexpected": "1"}


async def refused_everywhere(setup: Any, method: str, valid: dict[str, Any],
                             fields: dict[str, list[Any]], required: set[str]) -> None:  # fmt: skip
    exchange, user, ws, market, _, _ = setup
    before = await state(exchange, user, market)
    seen = 0
    for name, params in cases(valid, fields, required):
        seen += 1
        ws.next_id += 1
        req_id = ws.next_id
        text = frame(req_id, method, params)
        future = asyncio.get_running_loop().create_future()
        # a frame that is not JSON (NaN, 1e400) cannot be matched: its answer has id null
        ws.answers[req_id if _is_json(text) else None] = future
        await ws.send(text)
        try:
            answer = await asyncio.wait_for(future, 10)
        except TimeoutError:
            raise AssertionError(f"no answer to {method} {text}") from None
        assert 400 <= answer["status"] < 500, (method, name, params, answer)
        assert answer["error"]["code"] in CODES, (method, name, params, answer)
        assert answer["error"]["message"], answer
        if answer["error"]["code"] == "DUPLICATE_CLIENT_ORDER_ID":  # the existing order
            assert answer["result"]["client_order_id"] == "resting-1"
        else:
            assert "result" not in answer
    assert seen > len(fields)
    assert await state(exchange, user, market) == before, method


async def test_order_place(setup: Any) -> None:
    market = setup[3]
    valid = {"market": market, "side": "buy", "type": "limit", "amount": "0.5", "price": "4",
             "time_in_force": "GTC", "post_only": False, "client_order_id": unique("c"),
             "stp": "cancel_newest"}  # fmt: skip
    fields = {
        "market": [*STRING_BAD, "NOPE-USD", "btc-usd"],
        "side": ENUM_BAD,
        "type": ENUM_BAD,
        "amount": [*DECIMAL_BAD, "0.0001", "0.0005"],  # below the increment / min size
        "price": [*DECIMAL_BAD, "4.001"],  # off the price grid
        "time_in_force": ENUM_BAD,
        "post_only": BOOL_BAD,
        "client_order_id": [*STRING_BAD, "resting-1"],  # taken by the resting order
        "stp": ENUM_BAD,
        "quote_amount": DECIMAL_BAD,  # not allowed on a limit order at all
    }
    await refused_everywhere(setup, "order.place", valid, fields, {"market", "side", "type",
                                                                   "amount", "price"})  # fmt: skip


async def test_market_order_fields(setup: Any) -> None:
    market = setup[3]
    valid = {"market": market, "side": "buy", "type": "market", "quote_amount": "10"}
    fields = {"quote_amount": [*DECIMAL_BAD, "0"], "price": ["4"], "post_only": [True],
              "amount": ["1"]}  # fmt: skip
    # (with liquidity missing the valid order itself is refused: nothing can change)
    await refused_everywhere(setup, "order.place", valid, fields, {"quote_amount"})


async def test_order_cancel(setup: Any) -> None:
    valid = {"order_id": setup[4]}
    fields = {"order_id": [*STRING_BAD, "123", "99999999999999999999999"],
              "client_order_id": [*STRING_BAD, "nope"]}  # fmt: skip
    await refused_everywhere(setup, "order.cancel", {}, fields, set())
    await refused_everywhere(setup, "order.cancel", valid, {"client_order_id": ["resting-1"]},
                             set())  # fmt: skip


async def test_cancel_all_and_open_orders(setup: Any) -> None:
    fields = {"market": [*STRING_BAD, "NOPE-USD"]}
    await refused_everywhere(setup, "order.cancel_all", {}, fields, set())
    await refused_everywhere(setup, "orders.open", {}, fields, set())
    await refused_everywhere(setup, "balances.get", {}, {}, set())
    await refused_everywhere(setup, "addresses.get", {}, {}, set())


async def test_subscribe(setup: Any) -> None:
    market = setup[3]
    valid = {"channel": "book", "markets": [market], "depth": 10}
    fields = {
        "channel": ENUM_BAD,
        "markets": [*STRING_BAD, [], [1], [market] * 100, ["NOPE-USD"], [[market]]],
        "depth": [*INT_BAD, 1001],
    }
    await refused_everywhere(setup, "subscribe", valid, fields, {"channel", "markets"})


async def test_transfer_and_withdrawal(setup: Any) -> None:
    to_address = setup[5]
    valid = {"transfer_id": unique("t"), "asset": "USD", "amount": "1", "to_address": to_address}
    fields = {
        "transfer_id": STRING_BAD,
        "asset": [*STRING_BAD, "NOPE", "usd"],
        # zero, too precise, more than owned
        "amount": [*DECIMAL_BAD, "0", "0.00", "0.000000001", "5000"],
        "to_address": [*STRING_BAD, to_address[:-1] + ("q" if to_address[-1] != "q" else "p")],
    }
    await refused_everywhere(setup, "transfers.create", valid, fields, set(valid))
    valid = {"withdrawal_id": unique("w"), "asset": "USD", "amount": "1", "address": "ext1"}
    fields = {
        "withdrawal_id": STRING_BAD,
        "asset": [*STRING_BAD, "NOPE"],
        "amount": [*DECIMAL_BAD, "0", "0.00", "5000"],
        "address": [*STRING_BAD, to_address],  # an internal address: that is a transfer
    }
    await refused_everywhere(setup, "withdrawals.create", valid, fields, set(valid))


async def test_envelope(setup: Any) -> None:
    exchange, user, ws, market, _, _ = setup
    before = await state(exchange, user, market)
    for text in ("nope", "[]", "1", '{"id": 1}', '{"id": 1.5, "method": "ping"}',
                 '{"id": [], "method": "ping"}', '{"id": "' + "x" * 40 + '", "method": "ping"}',
                 '{"id": 1, "method": "nope"}', '{"id": 1, "method": 5}',
                 '{"id": 1, "method": "ping", "params": []}',
                 '{"id": 1, "method": "ping", "extra": 1}',
                 '{"id": 1, "method": "order.place", "params": ' + '{"a": ' * 8 + "1" + "}" * 9,
                 ):  # fmt: skip
        await ws.send(text)
    await asyncio.sleep(0.5)
    answers = ws.unmatched[-12:]
    assert len(answers) == 12 and all(a["status"] == 400 for a in answers), answers
    assert all(a["error"]["code"] == "INVALID_PARAM" for a in answers)
    assert await state(exchange, user, market) == before


async def test_http_bodies(setup: Any) -> None:
    exchange, user, _, market, order_id, _ = setup
    before = await state(exchange, user, market)
    bodies = [b"", b"nope", b"[]", b'{"market": 1}', b'{"amount": NaN}',
              b'{"market": "' + market.encode() + b'", "side": "buy", "type": "limit",'
              b' "amount": 1e400, "price": "1"}',
              b'{"market": "' + market.encode() + b'", "side": "buy", "type": "limit",'
              b' "amount": 0.5, "price": "1"}']  # fmt: skip
    async with exchange.http("a", user.token) as http:
        for body in bodies:
            r = await http.post("/orders", content=body)
            assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_PARAM", body
        for query in ({"depth": "0"}, {"depth": "x"}, {"depth": "1.5"}, {"other": "1"}):
            r = await http.get(f"/markets/{market}/book", params=query)
            assert r.status_code == 400, query
        for query in ({"status": "weird"}, {"market": "bad"}, {"limit": "-1"}, {"nope": "1"}):
            r = await http.get("/orders", params=query)
            assert r.status_code == 400, query
        r = await http.request("DELETE", f"/orders/{order_id}", params={"x": "1"})
        assert r.status_code == 400
    async with exchange.admin() as admin:
        for path, body in [
            ("/admin/deposits", {"deposit_id": "d", "address": "x", "asset": "USD", "amount": 1}),
            ("/admin/deposits", {"deposit_id": "d", "address": "x", "asset": "USD",
                                 "amount": "1", "extra": 1}),
            ("/admin/assets", {"symbol": "ok", "scale": 8}),
            ("/admin/assets", {"symbol": "OKAY", "scale": 8.0}),
            ("/admin/assets", {"symbol": "OKAY", "scale": 19}),
            ("/admin/markets", {"id": market, "base": "USD", "quote": "USD"}),
            ("/admin/markets", {"id": "A-B", "base": "A", "quote": "B", "price_increment": 0.01,
                                "size_increment": "1", "min_size": "1", "maker_fee_bps": 1,
                                "taker_fee_bps": 1}),
            (f"/admin/markets/{market}/status", {"status": "OPEN"}),
            (f"/admin/markets/{market}/status", {"status": "HALT", "x": 1}),
            ("/admin/withdrawals/nope/complete", {"unexpected": 1}),
        ]:  # fmt: skip
            r = await admin.post(path, json=body)
            assert r.status_code == 400, (path, body, r.text)
            assert r.json()["error"]["code"] == "INVALID_PARAM", (path, body, r.text)
    assert await state(exchange, user, market) == before
