"""Sixth black-box acceptance pass over /work/shared/PROTOCOL.md and docs/protocol.md:
the nasty cases a third-party bot author hits that the first five passes leave out.

- Parameters sent in the body of a ``DELETE`` or ``GET`` (where Binance also reads
  them) are refused with ``INVALID_PARAM`` rather than ignored: ``DELETE /orders``
  with ``{"market": ...}`` in its body cancelled the orders of every market.
- A buy above ``max_notional`` is refused as such, also when its cost passes the
  largest hold (it said "amount too large" of a one-lot order).
- History cursors holding a negative or out-of-range number are ``INVALID_PARAM``
  (they are not ours), not an empty page.
- A malformed market id (``BTCUSD``, ``btc-usd``) is ``UNKNOWN_MARKET`` in bodies and
  WebSocket params too, as in paths and query filters (was ``INVALID_PARAM``).
- The Python client ignores a ``book`` push of an unknown ``type`` (PROTOCOL.md:
  clients ignore unknown push types) instead of clearing the book and resubscribing.
- Candles with ``start`` after ``end`` are ``INVALID_PARAM`` (Binance's "Start time is
  greater than end time"), not an empty list.

Raw ``httpx`` and ``Ws`` only; money compared as exact strings. Targets the e2e session
exchange, or a live one when ``HFTX_ACCEPT_URL`` is set.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.test_e2e_support import Exchange, User, Ws, connect, fund, limit, new_market, new_user

pytest_plugins = ["tests.test_e2e_support"]

JSON = {"content-type": "application/json"}


async def call(live: Exchange, user: User, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with live.http("a", user.token) as http:
        return await http.request(method, path, **kwargs)


async def ok(live: Exchange, user: User, method: str, path: str, **kwargs: Any) -> Any:
    r = await call(live, user, method, path, **kwargs)
    assert r.status_code == 200, (method, path, r.status_code, r.text)
    return r.json()


def refused(r: httpx.Response, status: int, code: str) -> None:
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text


async def open_ids(live: Exchange, user: User) -> set[str]:
    return {o["id"] for o in await ok(live, user, "GET", "/orders")}


# -- bodies on routes that take none ---------------------------------------------------


async def test_a_body_on_a_delete_or_get_is_refused_and_cancels_nothing(live: Exchange) -> None:
    one, two = await new_market(live), await new_market(live)
    user = await new_user(live)
    await fund(live, user, {"USD": "100"})
    placed = {
        (await ok(live, user, "POST", "/orders", json=limit(m, "buy", "1", "1.00")))["id"]
        for m in (one, two)
    }
    by_id = next(iter(placed))

    # {"market": one} in the body, not the query: refused, both orders stay
    body = json.dumps({"market": one})
    refused(await call(live, user, "DELETE", "/orders", content=body, headers=JSON),
            400, "INVALID_PARAM")  # fmt: skip
    refused(await call(live, user, "DELETE", f"/orders/{by_id}", content=body, headers=JSON),
            400, "INVALID_PARAM")  # fmt: skip
    refused(await call(live, user, "GET", "/orders", content=body, headers=JSON),
            400, "INVALID_PARAM")  # fmt: skip
    refused(await call(live, user, "GET", "/balances", content="[]", headers=JSON),
            400, "INVALID_PARAM")  # fmt: skip
    form = {"content-type": "application/x-www-form-urlencoded"}  # as Binance takes them
    refused(await call(live, user, "DELETE", "/orders", content=f"market={one}", headers=form),
            400, "INVALID_PARAM")  # fmt: skip
    assert await open_ids(live, user) == placed

    # an empty body or {} is no body: the query names the market
    canceled = await ok(live, user, "DELETE", "/orders", params={"market": one},
                        content="{}", headers=JSON)  # fmt: skip
    assert [o["market"] for o in canceled] == [one]
    assert len(await ok(live, user, "GET", "/orders", content=b"")) == 1


# -- candles ---------------------------------------------------------------------------


async def test_candles_refuse_a_start_after_the_end(live: Exchange) -> None:
    market = await new_market(live)
    user = await new_user(live)
    url = f"/markets/{market}/candles"
    r = await call(live, user, "GET", url, params={"start": 2_000_000, "end": 1_000_000})
    refused(r, 400, "INVALID_PARAM")
    # an empty window (start = end) and an open one are not errors
    assert await ok(live, user, "GET", url, params={"start": 1_000_000, "end": 1_000_000}) == []
    assert await ok(live, user, "GET", url, params={"start": 1_000_000}) == []


# -- max_notional ----------------------------------------------------------------------


async def test_a_buy_above_max_notional_is_refused_as_such_whatever_its_size(
    live: Exchange,
) -> None:
    """A buy whose cost passes what any hold can be (2**53 - 1 minimal units, the
    ceiling of every ``max_notional``) said "amount too large" of a small amount."""
    market = await new_market(live, max_notional="100")
    user = await new_user(live)
    await fund(live, user, {"USD": "1000"})
    for body in (
        limit(market, "buy", "1", "10000000000.00"),  # 1 lot at a huge price
        limit(market, "buy", "1", "1000.00"),  # above max_notional, within a hold
        {"market": market, "side": "buy", "type": "market", "quote_amount": "100000000000"},
    ):
        r = await call(live, user, "POST", "/orders", json=body)
        refused(r, 400, "INVALID_PARAM")
        assert "max notional" in r.json()["error"]["message"], r.text
    assert await open_ids(live, user) == set()


# -- paging cursors --------------------------------------------------------------------


async def test_cursors_with_negative_or_out_of_range_numbers_are_refused(live: Exchange) -> None:
    """A cursor is opaque, and one that is not ours is INVALID_PARAM: negative or
    out-of-range numbers answered 200 with an empty page."""
    user = await new_user(live)
    for path, params in (
        ("/fills", {"cursor": "1~BTC-USD~-1"}),
        ("/fills", {"cursor": "-1~BTC-USD~1"}),
        ("/fills", {"cursor": "1~BTC-USD~99999999999999999999999"}),
        ("/fills", {"cursor": "9223372036854775808~BTC-USD~1"}),
        ("/orders", {"status": "all", "cursor": "-1795704160492~5"}),
        ("/orders", {"status": "closed", "cursor": "99999999999999999999999~1"}),
    ):
        refused(await call(live, user, "GET", path, params=params), 400, "INVALID_PARAM")
    # the largest numbers a cursor of ours can hold are still one
    biggest = f"{2**63 - 1}~BTC-USD~{2**63 - 1}"
    assert await ok(live, user, "GET", "/fills", params={"cursor": biggest}) == []


# -- market ids ------------------------------------------------------------------------


async def test_a_malformed_market_id_is_unknown_market_everywhere(
    live: Exchange, sockets: list[Ws]
) -> None:
    """``BTCUSD`` (Binance's spelling) or ``btc-usd`` names no listed market: the
    paths and query filters said UNKNOWN_MARKET, bodies and WebSocket params
    INVALID_PARAM. Now UNKNOWN_MARKET everywhere, as Binance's "Invalid symbol"."""
    user = await new_user(live)
    await fund(live, user, {"USD": "10"})
    ws = await connect(live, sockets, user)
    for bad in ("BTCUSD", "btc-usd", "BTC_USD", ""):
        order = limit(bad, "buy", "0.001", "1.00")
        refused(await call(live, user, "POST", "/orders", json=order), 400, "UNKNOWN_MARKET")
        for method, params in (
            ("order.place", order),
            ("orders.open", {"market": bad}),
            ("order.cancel_all", {"market": bad}),
            ("subscribe", {"channel": "book", "markets": ["BTC-USD", bad]}),
            ("subscribe", {"channel": "orders", "markets": [bad]}),
        ):
            answer = await ws.request(method, params)
            assert (answer["status"], answer["error"]["code"]) == (400, "UNKNOWN_MARKET"), answer
    for bad in ("BTCUSD", "btc-usd"):
        r = await call(live, user, "DELETE", "/orders", params={"market": bad})
        refused(r, 400, "UNKNOWN_MARKET")
        refused(await call(live, user, "GET", f"/markets/{bad}/book"), 400, "UNKNOWN_MARKET")
    # other malformed fields stay INVALID_PARAM
    r = await call(live, user, "POST", "/orders", json=limit("BTC-USD", "BUY", "0.001", "1.00"))
    refused(r, 400, "INVALID_PARAM")
    assert await open_ids(live, user) == set()


# -- clients ignore unknown push types -------------------------------------------------


async def test_the_python_client_ignores_an_unknown_book_push_type() -> None:
    """PROTOCOL.md: unknown fields and push types must be ignored by clients. The
    client's book subscription cleared its book and resubscribed on one."""
    from client.checksum import checksum
    from client.subscriptions import BookSubscription, Subscription

    class Owner:
        resubscribed = 0

        async def resubscribe(self, sub: Subscription) -> None:
            self.resubscribed += 1

        async def unsubscribe(self, sub: Subscription) -> None:
            sub.end()

    owner = Owner()
    sub = BookSubscription(owner, "BTC-USD")
    bids, asks = [["1.00", "2"]], [["1.10", "1"]]
    sub.feed({"channel": "book", "type": "snapshot", "market": "BTC-USD", "seq": 5,
              "bids": bids, "asks": asks, "checksum": checksum(asks, bids), "new": 1})  # fmt: skip
    await sub.wait_ready(1)
    sub.feed({"channel": "book", "type": "reset_hint", "market": "BTC-USD", "seq": 9})
    await asyncio.sleep(0)
    assert (sub.book.ready, sub.book.seq, owner.resubscribed) == (True, 5, 0)
    assert sub.book.best_bid() == ("1.00", "2")
    await sub.close()
    assert [push["type"] async for push in sub] == ["snapshot"]
