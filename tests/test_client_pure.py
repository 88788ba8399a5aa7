"""Small pure helpers of the client: order params, codec, errors, rate limit, flow."""

from __future__ import annotations

import random
from decimal import Decimal
from fractions import Fraction

import pytest

from client.amounts import fraction_str
from client.backoff import Backoff
from client.bots.flow import FlowParams, random_order
from client.codec import dumps, loads
from client.errors import HftxError, error_from_body
from client.markets import MarketSpec
from client.orders import order_params
from client.ratelimit import RateLimiter
from client.subscriptions import push_key
from client.ws import ws_url


def test_order_params_limit_and_market() -> None:
    assert order_params("BTC-USD", "buy", "limit", "0.01", Decimal("30000.10")) == {
        "market": "BTC-USD",
        "side": "buy",
        "type": "limit",
        "amount": "0.01",
        "price": "30000.10",
    }
    params = order_params(
        "BTC-USD", "sell", "limit", "1", "2", time_in_force="IOC", post_only=True,
        client_order_id="a.b:c-1_2", stp="cancel_both",
    )  # fmt: skip
    assert params["time_in_force"] == "IOC" and params["post_only"] is True
    assert params["client_order_id"] == "a.b:c-1_2" and params["stp"] == "cancel_both"
    assert order_params("BTC-USD", "buy", "market", quote_amount="100") == {
        "market": "BTC-USD",
        "side": "buy",
        "type": "market",
        "quote_amount": "100",
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"side": "long", "type": "limit", "amount": "1", "price": "1"},
        {"side": "buy", "type": "stop", "amount": "1", "price": "1"},
        {"side": "buy", "type": "limit", "amount": "1"},
        {"side": "buy", "type": "market", "amount": "1", "price": "1"},
        {"side": "buy", "type": "market"},
        {"side": "sell", "type": "market", "quote_amount": "1"},
        {"side": "buy", "type": "market", "amount": "1", "quote_amount": "1"},
        {"side": "buy", "type": "limit", "amount": "1", "price": "1", "time_in_force": "GTD"},
        {"side": "buy", "type": "limit", "amount": "1", "price": "1", "client_order_id": "a b"},
        {"side": "buy", "type": "limit", "amount": "1", "price": "1", "stp": "none"},
    ],
)
def test_order_params_rejects(kwargs: dict) -> None:
    with pytest.raises(HftxError) as info:
        order_params("BTC-USD", **kwargs)
    assert info.value.code == "INVALID_PARAM" and info.value.status == 400


def test_floats_never_go_on_the_wire() -> None:
    with pytest.raises(TypeError):
        order_params("BTC-USD", "buy", "limit", 0.1, "1")
    with pytest.raises(TypeError):
        dumps({"params": {"price": 1.5}})
    with pytest.raises(TypeError):
        dumps([Decimal("1")])
    assert dumps({"a": ["1.50", 2, None, True]}) == '{"a":["1.50",2,null,true]}'
    assert loads('{"x": 0.1}') == {"x": Decimal("0.1")}


def test_error_from_body() -> None:
    error = error_from_body(400, {"id": 1, "status": 400, "error": {"code": "BAD_PRECISION",
                                                                   "message": "tick"}})  # fmt: skip
    assert (error.code, error.message, error.status) == ("BAD_PRECISION", "tick", 400)
    assert error_from_body(404, {"code": "UNKNOWN_ORDER", "message": "x"}).code == "UNKNOWN_ORDER"
    assert error_from_body(429, None).code == "RATE_LIMITED"
    unknown = error_from_body(502, "Bad Gateway")
    assert unknown.code == "INTERNAL" and unknown.outcome_unknown
    assert str(unknown) == "INTERNAL (502): Bad Gateway"


def test_fraction_str() -> None:
    assert fraction_str(Fraction(999, 2500000)) == "0.0003996"
    assert fraction_str(Fraction(-3, 2)) == "-1.5"
    assert fraction_str(Fraction(20)) == "20"
    assert fraction_str(Fraction(1, 3), max_decimals=4) == "0.3333"


def test_rate_limiter_reserves_in_order() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, burst=2, clock=lambda: now[0])
    assert [limiter.reserve() for _ in range(4)] == [0.0, 0.0, 0.5, 1.0]
    now[0] = 10.0
    assert limiter.reserve() == 0.0
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(base=0.5, factor=2, cap=4)
    assert [backoff.delay(n, rand=lambda: 1.0) for n in range(5)] == [0.5, 1, 2, 4, 4]
    assert backoff.delay(3, rand=lambda: 0.0) == 2


def test_ws_url_and_routing() -> None:
    assert ws_url("http://127.0.0.1:9001") == "ws://127.0.0.1:9001/ws"
    assert ws_url("https://ex.example/") == "wss://ex.example/ws"
    assert push_key({"channel": "orders", "market": "BTC-USD"}) == ("orders", None)
    assert push_key({"channel": "book", "market": "BTC-USD"}) == ("book", "BTC-USD")


def test_random_orders_are_valid() -> None:
    spec = MarketSpec.from_market(
        {"id": "ETH-USD", "base": "ETH", "quote": "USD", "price_increment": "0.05",
         "size_increment": "0.001", "min_size": "0.01"}
    )  # fmt: skip
    rng = random.Random(3)
    params = FlowParams(max_size_multiple=4, market_pct=25, max_offset_ticks=8)
    kinds = set()
    for _ in range(2000):
        order = random_order(rng, spec, 40, params)
        kinds.add((order.side, order.type))
        lots = spec.size.steps(order.amount)
        assert lots % spec.min_lots == 0 and 1 <= lots // spec.min_lots <= 4
        if order.type == "market":
            assert order.price is None
        else:
            assert order.price is not None
            ticks = spec.price.steps(order.price)
            assert ticks >= 1 and abs(ticks - 40) <= 8
    assert len(kinds) == 4
