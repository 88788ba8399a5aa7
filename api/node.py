"""Everything one web node holds: clients, caches, limiters, sockets, feeds.

Created by the app's lifespan (``api.app``); handlers reach it as
``request.app.state.node`` / ``scope["app"].state.node``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from api import auth
from api.catchup import Catchup
from api.connection import CLOSE_RESTART, Connection
from api.db import Database
from api.errors import ApiError
from api.limits import Limits
from api.marketdata import MarketData
from api.metrics import Metrics
from api.private import PrivateHub
from api.ratelimit import Limiter, LoginThrottle
from api.redisbatch import batching
from api.session_orders import CANCEL_TIMEOUT_S
from api.tokens import Tokens
from api.users import User, Users

log = logging.getLogger("hftx.node")

SignupHook = Callable[[User], Awaitable[None]]


async def connect_redis(url: str) -> Any:
    """A client for ``url`` (a cluster client on a cluster); waits for Redis to be up."""
    from workers import connect

    delay = 0.2
    while True:
        try:
            return await connect(url)
        except (OSError, ConnectionError) as exc:
            log.warning("redis not reachable (%r), retrying", exc)
        except Exception as exc:
            if "connect" not in repr(exc).lower():
                raise
            log.warning("redis not reachable (%r), retrying", exc)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


class Node:
    def __init__(self, settings: Any, limits: Limits | None = None) -> None:
        self.settings = settings
        self.limits = limits or Limits.from_env()
        self.tokens = Tokens(settings.jwt_secret)
        self.allowed_origins: list[str] = list(getattr(settings, "allowed_origins", []) or [])
        self.metrics = Metrics()
        self.user_limiter = Limiter(self.limits.user_rate, self.limits.user_burst)
        self.ip_limiter = Limiter(self.limits.ip_rate, self.limits.ip_burst)
        self.signup_limiter = Limiter(self.limits.signup_rate, self.limits.signup_burst)
        self.connections: set[Connection] = set()
        self.connections_per_ip: dict[str, int] = {}  # open sockets by client address
        self.cache: dict[str, Any] = {}
        self.signup_hooks: list[SignupHook] = []
        self.closing = False
        self._background: set[asyncio.Task[Any]] = set()
        self.redis: Any = None
        self.ex: Any = None
        self.db = Database(settings.database_url)
        self.users = Users(self.db)

    async def start(self) -> None:
        from engine import ids
        from engine.exchange import Exchange

        node_id = getattr(self.settings, "node_id", None)
        self.redis = await connect_redis(self.settings.redis_url)
        if node_id is not None:  # HFTX_NODE_ID, from the environment or .env
            ids.use_node_id(node_id)
        else:  # one no other live process has (random ids could meet)
            node_id = await ids.claim_node_id(self.redis)
        log.info("node id %d", node_id)
        if os.environ.get("HFTX_REDIS_BATCH", "1") != "0":
            self.redis = batching(self.redis)
        self.ex = await Exchange.connect(self.redis)
        self.versions = auth.TokenVersions(self.redis, self.users)
        self.catchup = Catchup(
            self.redis,
            self.limits.history_wait,
            self.limits.settle_wait,
            self.metrics.catchup_timeouts,
        )
        self.login_throttle = LoginThrottle(
            self.redis,
            self.limits.login_failures_per_email,
            self.limits.login_failures_per_ip,
            self.limits.login_window,
        )
        self.hub = PrivateHub(self.settings.redis_url, self._revoked)
        await self.hub.start()
        self.marketdata = MarketData(self.ex, self.redis, self.db)
        await self.marketdata.start()
        await self.db.open()
        email = getattr(self.settings, "admin_email", None)
        password = getattr(self.settings, "admin_password", None)
        if email and password:
            self.spawn(self._bootstrap_admin(email, password))

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _revoked(self, user_id: str, version: int) -> None:
        self.versions.learn(user_id, version)

    async def _bootstrap_admin(self, email: str, password: str) -> None:
        delay = 0.5
        while True:
            try:
                await auth.ensure_admin(self, email, password)
                log.info("admin account %s ready", email)
                return
            except ApiError as exc:
                if exc.code != "UNAVAILABLE":
                    log.error("cannot create the admin account: %s", exc.message)
                    return
            except Exception as exc:
                log.warning("admin bootstrap failed (%r), retrying", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def drain(self, timeout: float = 2.0) -> None:
        """Graceful shutdown: a ``status/shutdown`` push, then close 1012, on every socket.

        No request is started once it begins, and a request being handled is
        answered first (bounded by ``timeout``): closing under it dropped the answer
        of an order the engine had placed."""
        self.closing = True
        text = orjson.dumps({"channel": "status", "type": "shutdown"}).decode()
        conns = list(self.connections)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(c.handling for c in conns) and loop.time() < deadline:
            await asyncio.sleep(0.005)
        for conn in conns:
            conn.push(text)
        if conns:
            await asyncio.wait(
                [
                    asyncio.ensure_future(c.close_after_flush(CLOSE_RESTART, "server restart"))
                    for c in conns
                ],
                timeout=timeout,
            )
        # sockets with cancel on disconnect cancel their orders as they end: let them,
        # before Redis is closed (bounded like each of them)
        readers = [c.reader for c in conns if c.orders.enabled and c.reader is not None]
        if readers:
            await asyncio.wait(readers, timeout=CANCEL_TIMEOUT_S)

    async def stop(self) -> None:
        self.closing = True
        for task in list(self._background):
            task.cancel()
        for closer in (
            getattr(self, "marketdata", None) and self.marketdata.stop,
            getattr(self, "hub", None) and self.hub.stop,
            self.ex and self.ex.close,
            self.db.close,
        ):
            if closer:
                with contextlib.suppress(Exception):
                    await closer()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()
