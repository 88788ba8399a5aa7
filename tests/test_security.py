"""Security over real web nodes: policies of every route and method, forged tokens,
other users' orders, Origin, frame/body sizes, flooding, slow consumers."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from typing import Any

import httpx
import jwt
import orjson
import pytest
import websockets
from starlette.routing import Route

from api.app import API_PREFIX, create_app
from api.gateway import MAX_REFUSED_BEFORE_AUTH, METHODS
from api.routing import POLICIES, ApiRoute
from tests.test_e2e_support import (
    ALLOWED_ORIGIN,
    Exchange,
    Ws,
    fund,
    new_market,
    new_user,
    unique,
)

pytest_plugins = ["tests.test_e2e_support"]


class _Settings:
    jwt_secret = "x" * 48
    database_url = "postgresql://nobody@127.0.0.1:1/none"
    redis_url = "redis://127.0.0.1:1/0"
    allowed_origins: tuple[str, ...] = ()
    demo = False


def api_routes() -> list[ApiRoute]:
    """Every /api/v1 route of the app, from the app itself (not from a list here)."""
    app = create_app(_Settings())
    found = []
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith(API_PREFIX + "/"):
            if route.path == API_PREFIX + "/{rest:path}":
                continue
            api_route = getattr(route.endpoint, "api_route", None)
            assert api_route is not None, f"{route.path} bypasses the route table (no policy)"
            found.append(api_route)
    return found


ROUTES = api_routes()


def concrete(path: str) -> str:
    return API_PREFIX + re.sub(r"\{[^}]+\}", "X1", path)


def test_every_route_declares_a_known_policy() -> None:
    assert len(ROUTES) >= 30
    for route in ROUTES:
        assert route.policy in POLICIES
    with pytest.raises(ValueError):
        ApiRoute("GET", "/x", "nobody", lambda call: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ApiRoute("GET", "/x", handler=lambda call: None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r.policy != "public"], ids=lambda r: f"{r.method} {r.path}"
)
async def test_private_routes_refuse_anonymous_and_users_admin_routes(
    exchange: Exchange, route: ApiRoute
) -> None:
    user = getattr(test_private_routes_refuse_anonymous_and_users_admin_routes, "user", None)
    if user is None:
        user = await new_user(exchange)
        test_private_routes_refuse_anonymous_and_users_admin_routes.user = user  # type: ignore[attr-defined]
    async with httpx.AsyncClient(base_url=exchange.url("a")) as http:
        anonymous = await http.request(route.method, concrete(route.path), json={})
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "UNAUTHORIZED"
        forged = jwt.encode(
            {"sub": user.user_id, "role": "admin", "exp": int(time.time()) + 60},
            None,
            algorithm="none",
        )
        for token in (forged, user.token + "x", "garbage"):
            r = await http.request(
                route.method, concrete(route.path), json={},
                headers={"Authorization": f"Bearer {token}"},
            )  # fmt: skip
            assert r.status_code == 401, (token, r.text)
        if route.policy == "admin":
            r = await http.request(
                route.method, concrete(route.path), json={},
                headers={"Authorization": f"Bearer {user.token}"},
            )  # fmt: skip
            assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize("method", sorted(m for m in METHODS if m != "auth"))
async def test_every_ws_method_needs_auth_first(exchange: Exchange, method: str) -> None:
    ws = await Ws.connect(exchange.ws_url("a"))
    answer = await ws.request(method, {})
    assert answer["status"] == 401 and answer["error"]["code"] == "UNAUTHORIZED"
    # not processed, but the socket stays open for `auth`
    user = await new_user(exchange)
    assert (await ws.request("auth", {"token": user.token}))["status"] == 200
    assert (await ws.request("ping"))["status"] == 200


async def test_a_client_that_keeps_skipping_auth_is_closed_4401(exchange: Exchange) -> None:
    ws = await Ws.connect(exchange.ws_url("a"))
    for _ in range(MAX_REFUSED_BEFORE_AUTH):
        assert (await ws.request("ping"))["status"] == 401
    assert (await asyncio.wait_for(ws.closed, 5))[0] == 4401


async def test_malformed_frames_before_auth_count_toward_the_same_limit(
    exchange: Exchange,
) -> None:
    """Garbage before `auth` (not JSON, not an object, a bad envelope, a malformed
    `auth`) is answered 400 and counted with the 401s: no 10 s of free garbage."""
    garbage = ["not json", "[1, 2]", '{"id": "g1", "method": "ping", "extra": 1}',
               '{"id": "g2", "method": "auth", "params": {"token": 7}}']  # fmt: skip
    ws = await Ws.connect(exchange.ws_url("a"))
    for frame in garbage:
        await ws.send(frame)
    assert (await ws.request("ping"))["status"] == 401  # the 5th refusal
    assert (await asyncio.wait_for(ws.closed, 5))[0] == 4401
    assert [a["status"] for a in ws.unmatched] == [400] * len(garbage)
    # below the limit the socket still takes a correct auth
    ws = await Ws.connect(exchange.ws_url("a"))
    for frame in garbage[: MAX_REFUSED_BEFORE_AUTH - 1]:
        await ws.send(frame)
    user = await new_user(exchange)
    assert (await ws.request("auth", {"token": user.token}))["status"] == 200
    assert (await ws.request("ping"))["status"] == 200
    await ws.close()


async def test_ws_auth_with_forged_tokens_closes_4401(exchange: Exchange) -> None:
    user = await new_user(exchange)
    secret = exchange.env["HFTX_JWT_SECRET"]
    now = int(time.time())
    good = {"sub": user.user_id, "role": "user", "tv": 0, "typ": "access", "iat": now,
            "exp": now + 60, "iss": "hftx", "aud": "hftx"}  # fmt: skip
    forged = [
        jwt.encode({**good, "role": "admin"}, None, algorithm="none"),
        jwt.encode(good, "y" * 48, algorithm="HS256"),
        jwt.encode({**good, "exp": now - 5}, secret, algorithm="HS256"),
        jwt.encode({k: v for k, v in good.items() if k != "exp"}, secret, algorithm="HS256"),
        jwt.encode({**good, "typ": "refresh"}, secret, algorithm="HS256"),
        jwt.encode({**good, "tv": 7}, secret, algorithm="HS256"),  # not the current version
    ]
    for token in forged:
        ws = await Ws.connect(exchange.ws_url("b"))
        answer = await ws.request("auth", {"token": token})
        assert answer["status"] == 401, token
        assert (await asyncio.wait_for(ws.closed, 5))[0] == 4401
    # the genuine article works, and the socket is closed when the token expires
    short = jwt.encode({**good, "exp": now + 2}, secret, algorithm="HS256")
    ws = await Ws.connect(exchange.ws_url("b"), short)
    assert (await ws.request("ping"))["status"] == 200
    assert (await asyncio.wait_for(ws.closed, 6))[0] == 4401


async def test_another_users_order_looks_exactly_like_an_unknown_one(exchange: Exchange) -> None:
    market = await new_market(exchange)
    owner, thief = await new_user(exchange), await new_user(exchange)
    await fund(exchange, owner, {"USD": "100"})
    await fund(exchange, thief, {"USD": "100"})
    async with exchange.http("a", owner.token) as http:
        order = (await http.post("/orders", json={"market": market, "side": "buy", "type": "limit",
                                                  "amount": "1", "price": "5",
                                                  "client_order_id": "mine"})).json()  # fmt: skip
    missing = str(int(order["id"]) + 12345)
    async with exchange.http("b", thief.token) as http:
        for verb, body in (("GET", None), ("DELETE", None), ("PATCH", {"amount": "0.001"})):
            theirs = await http.request(verb, f"/orders/{order['id']}", json=body)
            unknown = await http.request(verb, f"/orders/{missing}", json=body)
            assert theirs.status_code == unknown.status_code == 404
            assert theirs.json() == unknown.json()
            assert theirs.headers["content-length"] == unknown.headers["content-length"]
        assert (await http.delete("/orders")).json() == []
        assert (await http.get("/orders")).json() == []
    ws = await Ws.connect(exchange.ws_url("b"), thief.token)
    for method, extra in (
        ("order.cancel", {}),
        ("order.get", {}),
        ("order.amend", {"amount": "0.001"}),
    ):
        theirs = await ws.request(method, {"order_id": order["id"], **extra}, id="x")
        unknown = await ws.request(method, {"order_id": missing, **extra}, id="x")
        assert theirs == unknown and theirs["error"]["code"] == "UNKNOWN_ORDER"
    by_cid = await ws.request("order.cancel", {"client_order_id": "mine"})
    assert by_cid["error"]["code"] == "UNKNOWN_ORDER"
    await ws.close()
    async with exchange.http("a", owner.token) as http:
        still = (await http.get(f"/orders/{order['id']}")).json()
        assert still == {k: v for k, v in order.items() if k != "fills"}
        assert [o["id"] for o in (await http.get("/orders")).json()] == [order["id"]]


async def test_origin_allowlist(exchange: Exchange) -> None:
    url = exchange.ws_url("a")
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(url, origin="https://evil.example")  # type: ignore[arg-type]
    assert info.value.response.status_code == 403
    for origin in (ALLOWED_ORIGIN, exchange.url("a"), None):
        socket_ = await websockets.connect(url, origin=origin)  # type: ignore[arg-type]
        await socket_.close()


async def test_oversized_frame_closes_1009(exchange: Exchange) -> None:
    user = await new_user(exchange, "strict")
    ws = await Ws.connect(exchange.ws_url("strict"), user.token)
    await ws.send(orjson.dumps({"id": 1, "method": "ping", "params": {"pad": "x" * 5000}}).decode())
    assert (await asyncio.wait_for(ws.closed, 5))[0] == 1009


async def test_oversized_and_deep_http_bodies(exchange: Exchange) -> None:
    user = await new_user(exchange, "strict")
    async with exchange.http("strict", user.token) as http:
        r = await http.post("/orders", content=b'{"pad": "' + b"x" * 5000 + b'"}')
        assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
        deep = b"[" * 50 + b"]" * 50
        r = await http.post("/orders", content=deep)
        assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_PARAM"


async def test_flooding_gets_429_then_close_4429(exchange: Exchange) -> None:
    user = await new_user(exchange, "strict")
    ws = await Ws.connect(exchange.ws_url("strict"), user.token)
    for i in range(600):
        await ws.send({"id": i, "method": "ping"})
    code = (await asyncio.wait_for(ws.closed, 10))[0]
    limited = [m for m in ws.unmatched if m["status"] == 429]
    assert limited and limited[0]["error"]["code"] == "RATE_LIMITED"
    assert code == 4429


async def test_connections_per_user_are_capped(exchange: Exchange) -> None:
    user = await new_user(exchange, "strict")
    sockets = [await Ws.connect(exchange.ws_url("strict"), user.token) for _ in range(3)]
    extra = await Ws.connect(exchange.ws_url("strict"))
    answer = await extra.request("auth", {"token": user.token})
    assert answer["status"] == 429
    await sockets[0].close()
    await asyncio.sleep(0.2)
    assert (await extra.request("auth", {"token": user.token}))["status"] == 200
    for ws in (*sockets[1:], extra):
        await ws.close()


async def test_auth_must_come_in_time(exchange: Exchange) -> None:
    ws = await Ws.connect(exchange.ws_url("strict"))
    assert (await asyncio.wait_for(ws.closed, 5))[0] == 4401


async def slow_closes(exchange: Exchange, node: str) -> float:
    """How many sockets ``node`` has closed as slow consumers (its ``/metrics``)."""
    async with httpx.AsyncClient(base_url=exchange.url(node)) as http:
        text = (await http.get("/metrics")).text
    found = re.search(r'^hftx_ws_server_closes_total\{code="4408"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_slow_consumer_is_closed_4408(exchange: Exchange) -> None:
    """A socket that stops reading while pushes keep coming is closed, not waited on.

    Its own requests are back-pressured (the node stops reading them while their
    answers wait), so the overflow comes from pushes: book updates caused by
    someone else.
    """
    market = await new_market(exchange)
    user, other = await new_user(exchange, "strict"), await new_user(exchange)
    await fund(exchange, user, {"USD": "100000"})
    await fund(exchange, other, {"USD": "100000"})
    placer = await Ws.connect(exchange.ws_url("a"), user.token)
    for i in range(1000):  # a deep book: big snapshots (~19 kB at depth 1000)
        order = {"market": market, "side": "buy", "type": "limit", "amount": "0.001",
                 "price": f"{1 + i / 100:.2f}"}  # fmt: skip
        assert (await placer.request("order.place", order))["status"] == 200
    await placer.close()
    closes_before = await slow_closes(exchange, "strict")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(exchange.url("strict").rsplit(":", 1)[1])))
    raw = await websockets.connect(exchange.ws_url("strict"), sock=sock, max_size=2**24)
    await raw.send(orjson.dumps({"id": 0, "method": "auth", "params": {"token": user.token}}))
    await raw.recv()
    # stop reading: ask for ~5 MB of snapshots (more than the socket buffers hold)
    request = {"method": "subscribe", "params": {"channel": "book", "markets": [market],
                                                 "depth": 1000}}  # fmt: skip
    for i in range(280):
        await raw.send(orjson.dumps({"id": i + 1, **request}).decode())
    await asyncio.sleep(2)
    async with exchange.http("a", other.token) as http:  # pushes it cannot take
        for i in range(300):  # spaced, so that each is its own book update (> 64 queued)
            order = {"market": market, "side": "buy", "type": "limit", "amount": "0.001",
                     "price": f"{20 + i}"}  # fmt: skip
            assert (await http.post("/orders", json=order)).status_code == 200
            await asyncio.sleep(0.005)
            # read again as soon as the node gave up on it: a close frame that waits
            # longer than the node's close timeout behind unread data is abandoned
            if i % 10 == 9 and await slow_closes(exchange, "strict") > closes_before:
                break
    assert await slow_closes(exchange, "strict") == closes_before + 1
    code = None
    try:
        while True:
            await asyncio.wait_for(raw.recv(), 10)
    except websockets.ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else None
    assert code == 4408


async def test_errors_never_leak_internals(exchange: Exchange) -> None:
    user = await new_user(exchange)
    probes: list[Any] = [
        "{",
        '{"market": "BTC-USD", "side": "buy", "type": "limit", "amount": 1e400}',
        '{"market": "X\'; DROP TABLE users;--"}',
        '{"market": "{m:BTC-USD}:cfg"}',
    ]
    async with exchange.http("a", user.token) as http:
        for body in probes:
            r = await http.post("/orders", content=body.encode())
            assert r.status_code == 400, r.text
            text = r.text.lower()
            for leak in ("traceback", "psycopg", "select ", "{m:", "redis", "lua", 'file "'):
                assert leak not in text, (body, r.text)
        r = await http.get("/orders/" + "9" * 30)
        assert r.status_code in (400, 404)
        r = await http.get(f"/orders/{unique()}")
        assert r.status_code in (400, 404) and "error" in r.json()


async def test_page_files_are_revalidated_on_every_load(exchange: Exchange) -> None:
    # unversioned file names: without no-cache a browser may keep heuristically fresh
    # old modules after an upgrade and mix them with new ones
    async with httpx.AsyncClient(base_url=exchange.url("a")) as http:
        for path in ("/", "/app.js", "/js/order.js", "/style.css"):
            r = await http.get(path)
            assert r.status_code == 200, path
            assert r.headers["cache-control"] == "no-cache", path
            again = await http.get(path, headers={"If-None-Match": r.headers["etag"]})
            assert again.status_code == 304, path
        assert (await http.get("/api/v1/markets")).headers["cache-control"] == "no-store"


async def test_cors_only_for_allowlisted_origins(exchange: Exchange) -> None:
    async with httpx.AsyncClient(base_url=exchange.url("a")) as http:
        preflight = {"Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization"}  # fmt: skip
        ok = await http.options("/api/v1/orders", headers={"Origin": ALLOWED_ORIGIN, **preflight})
        assert ok.headers.get("access-control-allow-origin") == ALLOWED_ORIGIN
        bad = await http.options("/api/v1/orders", headers={"Origin": "https://evil.example",
                                                             **preflight})  # fmt: skip
        assert "access-control-allow-origin" not in bad.headers
        r = await http.get("/api/v1/markets")
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"
