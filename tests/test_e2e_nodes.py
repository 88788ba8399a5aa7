"""Web node lifecycle: graceful shutdown, and trading while PostgreSQL is down."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import httpx

from ops.processes import free_port
from tests.test_e2e_support import Exchange, Ws, extra_node, fund, new_market, new_user

pytest_plugins = ["tests.test_e2e_support"]


async def test_graceful_shutdown_pushes_status_then_closes_1012(exchange: Exchange) -> None:
    user = await new_user(exchange)
    with extra_node(exchange, "shutdown") as (base, proc):
        ws = await Ws.connect(base.replace("http", "ws") + "/ws", user.token)
        assert (await ws.request("ping"))["status"] == 200
        proc.send_signal(signal.SIGTERM)
        code, _reason = await asyncio.wait_for(ws.closed, 10)
        assert code == 1012
        assert ws.pushes[-1] == {"channel": "status", "type": "shutdown"}
        # uvicorn re-raises the signal once shut down: "killed by SIGTERM", after a clean exit
        assert await asyncio.to_thread(proc.wait, 15) in (0, -signal.SIGTERM)


async def test_a_node_trades_while_postgresql_is_down(exchange: Exchange) -> None:
    market = await new_market(exchange)
    user = await new_user(exchange)  # logged in through a healthy node
    await fund(exchange, user, {"USD": "100"})
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    with extra_node(exchange, "nopg", DATABASE_URL=dead, HFTX_ADMIN_EMAIL="") as (base, _proc):
        async with httpx.AsyncClient(base_url=base) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["postgres"] is False
            headers = {"Authorization": f"Bearer {user.token}"}
            order = {"market": market, "side": "buy", "type": "limit", "amount": "1", "price": "2"}
            r = await http.post("/api/v1/orders", json=order, headers=headers)
            assert r.status_code == 200 and r.json()["status"] == "NEW", r.text
            r = await http.get("/api/v1/fills", headers=headers)
            assert r.status_code == 503 and r.json()["error"]["code"] == "UNAVAILABLE"
            r = await http.post(
                "/api/v1/auth/login", json={"email": user.email, "password": "x" * 9}
            )
            assert r.status_code == 503
        ws = await Ws.connect(base.replace("http", "ws") + "/ws", user.token)
        answer = await ws.request("order.place", {**order, "price": "3"})
        assert answer["status"] == 200, answer
        assert len((await ws.request("orders.open"))["result"]) == 2
        await ws.close()


async def test_demo_mode_faucet_and_demo_users(exchange: Exchange) -> None:
    with extra_node(exchange, "demo", HFTX_DEMO="1") as (base, _proc):
        async with httpx.AsyncClient(base_url=base + "/api/v1") as http:
            email = f"demo-{time.time_ns()}@e2e.hftx.dev"
            r = await http.post("/auth/signup", json={"email": email, "password": "demo-pass-1"})
            assert r.status_code == 201
            r = await http.post("/auth/login", json={"email": email, "password": "demo-pass-1"})
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            funds = {
                b["asset"]: b["total"]
                for b in (await http.get("/balances", headers=headers)).json()
            }
            assert funds["USD"] == "100000.00000000" and funds["BTC"] == "2.00000000"

            async def alice_funded() -> Any:
                r = await http.post("/auth/login", json={"email": "alice@demo.hftx.dev",
                                                         "password": "alice-demo-pw"})  # fmt: skip
                if r.status_code != 200:
                    return None
                token = r.json()["access_token"]
                got = await http.get("/balances", headers={"Authorization": f"Bearer {token}"})
                return {b["asset"] for b in got.json()} >= {"USD", "BTC"}

            deadline = time.monotonic() + 30
            while not await alice_funded():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)


async def test_a_node_restart_cancels_the_orders_of_cancel_on_disconnect_sockets(
    exchange: Exchange,
) -> None:
    """SIGTERM: the node closes its sockets 1012 and, before it lets go of Redis, a
    socket with cancel on disconnect cancels the orders it placed."""
    market = await new_market(exchange)
    user = await new_user(exchange)
    await fund(exchange, user, {"USD": "100"})
    with extra_node(exchange, "cod-restart") as (base, proc):
        ws = await Ws.connect(base.replace("http", "ws") + "/ws", user.token)
        assert (await ws.request("session.cancel_on_disconnect", {"enabled": True}))[
            "status"
        ] == 200
        order = {"market": market, "side": "buy", "type": "limit", "amount": "1", "price": "2"}
        placed = await ws.request("order.place", order)
        assert placed["result"]["status"] == "NEW", placed
        proc.send_signal(signal.SIGTERM)
        code, _reason = await asyncio.wait_for(ws.closed, 10)
        assert code == 1012
        await asyncio.to_thread(proc.wait, 15)
    async with exchange.http("a", user.token) as http:
        got = (await http.get(f"/orders/{placed['result']['id']}")).json()
    assert got["status"] == "CANCELED"


async def test_web_nodes_without_a_node_id_claim_their_own(exchange: Exchange) -> None:
    """Nodes started without HFTX_NODE_ID take theirs from the counter in Redis (not at
    random, where two could meet): the order ids of two nodes carry two node ids the
    counter handed out."""
    import redis.asyncio as aredis

    from engine.ids import NODE_COUNTER_KEY

    market = await new_market(exchange)
    user = await new_user(exchange)
    await fund(exchange, user, {"USD": "1000"})
    drawn = set()
    for node in ("a", "b"):
        async with exchange.http(node, user.token) as http:
            order = {"market": market, "side": "buy", "type": "limit", "amount": "0.001",
                     "price": "10.00"}  # fmt: skip
            r = await http.post("/orders", json=order)
            assert r.status_code == 200, r.text
            drawn.add((int(r.json()["id"]) >> 12) & 1023)
    redis = aredis.from_url(exchange.redis_url)
    handed_out = int(await redis.get(NODE_COUNTER_KEY))
    await redis.aclose()
    assert len(drawn) == 2 and all(node < handed_out for node in drawn), (drawn, handed_out)
