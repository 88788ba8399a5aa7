"""Subscriptions routing and book resync, with a stub owner standing in for the client."""

from __future__ import annotations

import asyncio

from client.checksum import checksum
from client.codec import Json
from client.errors import error_from_body
from client.subscriptions import BookSubscription, Subscription


class StubOwner:
    def __init__(self) -> None:
        self.resubscribed: list[Json] = []
        self.unsubscribed: list[Json] = []

    async def resubscribe(self, sub: Subscription) -> None:
        self.resubscribed.append(sub.params)

    async def unsubscribe(self, sub: Subscription) -> None:
        self.unsubscribed.append(sub.params)
        sub.end()


def snapshot(seq: int, bids: list, asks: list) -> Json:
    levels = checksum([tuple(a) for a in asks], [tuple(b) for b in bids])
    return {"channel": "book", "type": "snapshot", "market": "BTC-USD", "seq": seq,
            "bids": bids, "asks": asks, "checksum": levels}  # fmt: skip


async def test_iteration_and_close() -> None:
    owner = StubOwner()
    sub = Subscription(owner, "trades", "BTC-USD")
    assert sub.params == {"channel": "trades", "markets": ["BTC-USD"]}
    sub.feed({"channel": "trades", "trade_id": 1})
    sub.feed({"channel": "trades", "trade_id": 2})
    await sub.close()
    assert [push["trade_id"] async for push in sub] == [1, 2]
    assert owner.unsubscribed == [sub.params]
    sub.feed({"channel": "trades", "trade_id": 3})  # ignored after close
    assert [push async for push in sub] == []


async def test_callback_delivery_and_overflow() -> None:
    seen: list[int] = []

    async def on_push(push: Json) -> None:
        seen.append(push["n"])

    sub = Subscription(StubOwner(), "orders", callback=on_push, maxsize=3)
    assert sub.params == {"channel": "orders"}
    for n in range(5):
        sub.feed({"channel": "orders", "n": n})
    assert sub.dropped == 2
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    sub.feed({"channel": "orders", "n": 9})
    sub.end()
    for _ in range(5):
        await asyncio.sleep(0)
    assert seen == [0, 1, 2, 9]


async def test_book_subscription_resyncs_on_gap() -> None:
    owner = StubOwner()
    sub = BookSubscription(owner, "BTC-USD", depth=10)
    assert sub.params == {"channel": "book", "depth": 10, "markets": ["BTC-USD"]}
    sub.feed(snapshot(5, [["1.00", "2"]], [["1.10", "1"]]))
    book = await sub.wait_ready(1)
    assert book.best_bid() == ("1.00", "2")

    sub.feed({"channel": "book", "type": "update", "market": "BTC-USD", "first_seq": 6,
              "seq": 6, "bids": [], "asks": [], "checksum": book.checksum()})  # fmt: skip
    sub.feed({"channel": "book", "type": "update", "market": "BTC-USD", "first_seq": 9,
              "seq": 9, "bids": [], "asks": []})  # fmt: skip
    assert not sub.book.ready
    await asyncio.sleep(0)
    assert owner.resubscribed == [sub.params] and sub.resyncs == 1

    sub.feed(snapshot(20, [["1.01", "1"]], []))
    await sub.wait_ready(1)
    assert sub.book.seq == 20
    delivered = []
    await sub.close()
    async for push in sub:
        delivered.append((push["type"], push["seq"]))
    assert delivered == [("snapshot", 5), ("update", 6), ("snapshot", 20)]


async def test_book_subscription_resyncs_on_bad_message() -> None:
    owner = StubOwner()
    sub = BookSubscription(owner, "BTC-USD")
    sub.feed(snapshot(1, [], []))
    sub.feed({"channel": "book", "type": "update", "market": "BTC-USD", "seq": 2,
              "bids": [["1.00", 2.5]]})  # fmt: skip
    await asyncio.sleep(0)
    assert owner.resubscribed and not sub.book.ready
    sub.end()


def test_duplicate_error_carries_existing_order() -> None:
    body = {"id": 3, "status": 409, "result": {"id": "42", "status": "NEW"},
            "error": {"code": "DUPLICATE_CLIENT_ORDER_ID", "message": "dup"}}  # fmt: skip
    error = error_from_body(409, body)
    assert error.code == "DUPLICATE_CLIENT_ORDER_ID"
    assert error.result == {"id": "42", "status": "NEW"}
    assert error.details["message"] == "dup"
    http_body = {"error": {"code": "DUPLICATE_CLIENT_ORDER_ID", "message": "dup",
                           "order": {"id": "42"}}}  # fmt: skip
    assert error_from_body(409, http_body).result == {"id": "42"}
