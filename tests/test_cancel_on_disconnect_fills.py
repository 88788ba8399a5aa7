"""Cancel on disconnect forgets the quotes that fill: an in-process web node, whose
sockets' order tables the test can read."""

from __future__ import annotations

import asyncio

import websockets

from tests.test_p2p_api_support import Api, Socket, subscribed

pytest_plugins = ["tests.test_p2p_api_support"]


def ask(price: str) -> dict[str, str]:
    return {"market": "BTC-USD", "side": "sell", "type": "limit", "amount": "0.1",
            "price": price}  # fmt: skip


async def test_quotes_filled_by_others_leave_the_sockets_table(api: Api) -> None:
    """A market maker's filled quotes were kept up to the limit (10,000 a socket), and
    enough of them pushed a still resting quote out of it: that quote then outlived the
    socket. An ``orders`` push of an ended order now takes it out."""
    maker, taker = await api.user(), await api.user()
    await api.fund(maker, "BTC", "1")
    await api.fund(taker, "USD", "100000")
    async with subscribed(api, [maker], "orders") as [quotes]:
        await quotes.ok("session.cancel_on_disconnect", {"enabled": True})
        prices = ("30000.00", "30001.00", "30500.00")
        ids = [(await quotes.ok("order.place", ask(price)))["id"] for price in prices]
        [table] = [c.orders for c in api.node.connections if c.orders.enabled]
        assert len(table) == 3
        taken = {"market": "BTC-USD", "side": "buy", "type": "limit", "amount": "0.2",
                 "price": "30001.00", "time_in_force": "IOC"}  # fmt: skip
        assert (await api.ok("POST", "/orders", taker, taken))["status"] == "FILLED"
        for _ in range(100):  # the FILLED pushes reach the node through pub/sub
            if len(table) == 1:
                break
            await asyncio.sleep(0.02)
        assert table.by_market() == {"BTC-USD": [ids[2]]}


async def test_a_quoting_socket_without_subscriptions_learns_from_a_sibling(api: Api) -> None:
    """The quoting socket subscribes to nothing; another socket of the same user on
    the node listens to a private channel, which brings the pushes to the node."""
    maker, taker = await api.user(), await api.user()
    await api.fund(maker, "BTC", "1")
    await api.fund(taker, "USD", "100000")
    async with websockets.connect(api.ws_url) as raw, subscribed(api, [maker], "balances"):
        quotes = Socket(raw)
        await quotes.ok("auth", {"token": maker.token})
        await quotes.ok("session.cancel_on_disconnect", {"enabled": True})
        kept = (await quotes.ok("order.place", ask("30500.00")))["id"]
        await quotes.ok("order.place", ask("30000.00"))
        [table] = [c.orders for c in api.node.connections if c.orders.enabled]
        taken = {"market": "BTC-USD", "side": "buy", "type": "market", "amount": "0.1"}
        assert (await api.ok("POST", "/orders", taker, taken))["status"] == "FILLED"
        for _ in range(100):
            if len(table) == 1:
                break
            await asyncio.sleep(0.02)
        assert table.by_market() == {"BTC-USD": [kept]}
