"""A web node in process for the P2P and notification tests (a pytest plugin:
``pytest_plugins = ["tests.test_p2p_api_support"]``; no tests here).

The ``api`` fixture serves ``api.app.create_app`` with uvicorn on a loopback port over
a flushed Valkey and a fresh migrated PostgreSQL database; ``Api`` signs users up,
funds them (admin deposits) and calls HTTP; ``Socket`` is one WebSocket with request
ids and a push backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aredis
import uvicorn
import websockets

from api import auth
from api.app import create_app
from api.limits import Limits
from engine.functions import ensure_loaded
from engine.seed import seed_defaults
from ops import migrate
from ops.processes import free_port

PASSWORD = "p2p-test-password"
ADMIN = "admin@p2p.hftx.dev"
LIMITS = Limits(user_rate=1e6, user_burst=1e6, ip_rate=1e6, ip_burst=1e6, signup_rate=1e6,
                signup_burst=1e6)  # fmt: skip


def _settings(valkey_url: str, pg_url: str) -> Any:
    name = f"hftx_p2p_{secrets.token_hex(4)}"
    database_url = migrate.create_database(pg_url, name)
    migrate.migrate(database_url)
    return SimpleNamespace(
        redis_url=valkey_url, database_url=database_url, jwt_secret=secrets.token_urlsafe(48),
        allowed_origins=[], admin_email=None, admin_password=None, demo=False,
        host="127.0.0.1", port=9001, log_level="INFO",
    )  # fmt: skip


async def _fresh_redis(url: str) -> None:
    r = aredis.Redis.from_url(url)
    await r.flushall()
    await ensure_loaded(r)
    await seed_defaults(r)
    await r.aclose()


@dataclass
class User:
    id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    def __init__(self, http: httpx.AsyncClient, node: Any, ws_url: str) -> None:
        self.http = http
        self.node = node
        self.ws_url = ws_url
        self.admin: User | None = None

    async def user(self) -> User:
        email = f"{uuid.uuid4().hex[:12]}@p2p.hftx.dev"
        r = await self.http.post("/auth/signup", json={"email": email, "password": PASSWORD})
        assert r.status_code == 201, r.text
        r = await self.http.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return User(str((await self.http.get("/me", headers=_h(r))).json()["user_id"]),
                    r.json()["access_token"])  # fmt: skip

    async def fund(self, user: User, asset: str, amount: str) -> None:
        if self.admin is None:
            await auth.ensure_admin(self.node, ADMIN, PASSWORD)
            r = await self.http.post("/auth/login", json={"email": ADMIN, "password": PASSWORD})
            self.admin = User("admin", r.json()["access_token"])
        addresses = (await self.http.get("/addresses", headers=user.auth)).json()
        address = next(a["address"] for a in addresses if a["asset"] == asset)
        r = await self.http.post(
            "/admin/deposits", headers=self.admin.auth,
            json={"deposit_id": uuid.uuid4().hex[:16], "address": address, "asset": asset,
                  "amount": amount},
        )  # fmt: skip
        assert r.status_code == 200, r.text

    async def call(self, method: str, path: str, user: User | None, body: Any = None) -> Any:
        r = await self.http.request(
            method, path, headers=user.auth if user else {},
            json=body if body is not None else None,
        )  # fmt: skip
        return r

    async def ok(self, method: str, path: str, user: User | None, body: Any = None) -> Any:
        r = await self.call(method, path, user, body)
        assert r.status_code == 200, (method, path, r.status_code, r.text)
        return r.json()

    async def refused(
        self, status: int, code: str, method: str, path: str, user: User | None, body: Any = None
    ) -> str:
        r = await self.call(method, path, user, body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
        return str(r.json()["error"]["message"])

    async def free(self, user: User, asset: str = "BTC") -> str:
        rows = await self.ok("GET", "/balances", user)
        return next((b["free"] for b in rows if b["asset"] == asset), "0")


def _h(r: httpx.Response) -> dict[str, str]:
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
async def api(valkey_url: str, pg_url: str) -> AsyncIterator[Api]:
    """A web node served by uvicorn on a loopback port (real HTTP and WebSocket)."""
    await _fresh_redis(valkey_url)
    async with serve_api(_settings(valkey_url, pg_url)) as served:
        yield served


@contextlib.asynccontextmanager
async def serve_api(settings: Any, limits: Limits = LIMITS) -> AsyncIterator[Api]:
    """A web node of ``settings`` served by uvicorn on a free loopback port."""
    app = create_app(settings, limits)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), task
        await asyncio.sleep(0.01)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base + "/api/v1", timeout=20) as http:
            yield Api(http, app.state.node, base.replace("http", "ws") + "/ws")
    finally:
        server.should_exit = True
        await task


OFFER = {
    "side": "sell", "asset": "BTC", "fiat": "USD", "price": "30000.10", "amount": "1",
    "min_amount": "0.01", "max_amount": "0.5", "payment_methods": ["SEPA", "Revolut"],
    "payment_window": 15,
}  # fmt: skip


# -- WebSocket ---------------------------------------------------------------------------


class Socket:
    """One authenticated WebSocket with request ids and a push backlog."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.n = 0
        self.pushes: list[dict[str, Any]] = []

    async def rpc(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        await self.ws.send(orjson.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = orjson.loads(await asyncio.wait_for(self.ws.recv(), 10))
            if msg.get("id") == self.n:
                return msg  # type: ignore[no-any-return]
            self.pushes.append(msg)

    async def ok(self, method: str, params: dict[str, Any]) -> Any:
        msg = await self.rpc(method, params)
        assert msg["status"] == 200, msg
        return msg["result"]

    async def push(self, channel: str) -> dict[str, Any]:
        while not any(p.get("channel") == channel for p in self.pushes):
            self.pushes.append(orjson.loads(await asyncio.wait_for(self.ws.recv(), 10)))
        found = next(p for p in self.pushes if p.get("channel") == channel)
        self.pushes.remove(found)
        return found


@contextlib.asynccontextmanager
async def subscribed(api: Api, users: list[User], channel: str) -> AsyncIterator[list[Socket]]:
    """One authenticated socket per user, each subscribed to ``channel``."""
    async with contextlib.AsyncExitStack() as stack:
        sockets = []
        for user in users:
            sock = Socket(await stack.enter_async_context(websockets.connect(api.ws_url)))
            await sock.ok("auth", {"token": user.token})
            await sock.ok("subscribe", {"channel": channel})
            sockets.append(sock)
        yield sockets
