"""Demo mode (``HFTX_DEMO=1`` or ``--demo``): funds for everyone, demo users, live bots.

- A faucet credits :data:`DEMO_FUNDS` to every new sign-up, through the normal
  deposit path (``ex.deposit`` to the user's own deposit addresses) with a
  deterministic deposit id per user and asset, so it can never pay twice.
- The default assets and markets are seeded; demo users (:data:`DEMO_USERS`, with
  the passwords printed at start) exist with funds.
- One web node (a Redis lease decides which) runs the client's example bots
  against itself over the public API: a market maker and a random trader per
  market, each with its own funded account. A bot that fails (an error at start,
  say) is started again at the next lease renewal, every 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from engine.units import parse_amount

if TYPE_CHECKING:
    from api.node import Node
    from api.users import User

log = logging.getLogger("hftx.demo")

DEMO_FUNDS = {"USD": "100000", "USDT": "100000", "BTC": "2", "ETH": "30", "SOL": "500"}
BOT_FUNDS = {"USD": "5000000", "USDT": "1000000", "BTC": "100", "ETH": "1500", "SOL": "30000"}
DEMO_USERS = [("alice@demo.hftx.dev", "alice-demo-pw"), ("bob@demo.hftx.dev", "bob-demo-pw")]
REFERENCES = {"BTC-USD": "60000.00", "ETH-USD": "3000.00", "SOL-USD": "150.000"}
LEASE_KEY = "hftx:demo:bots"
LEASE_S = 15


async def credit(node: Node, user_id: str, funds: dict[str, str], tag: str) -> None:
    """Deposit ``funds`` to ``user_id`` once (deposit id ``<tag>:<user>:<asset>``)."""
    scales = {a.symbol: a.scale for a in await node.ex.assets()}
    for asset, address in await node.ex.addresses(user_id):
        if asset in funds and asset in scales:
            amount = parse_amount(scales[asset], funds[asset])
            await node.ex.deposit(f"{tag}:{user_id}:{asset}"[:36], address, asset, amount)


async def faucet(node: Node, user: User) -> None:
    await credit(node, user.id, DEMO_FUNDS, "faucet")


async def ensure_user(node: Node, email: str, password: str) -> User:
    """The account ``email`` with ``password`` (created or its password reset)."""
    from api import passwords

    user = await node.users.by_email(email)
    if user is None:
        return await node.users.create(email, await passwords.hash_password(password))
    if not await passwords.verify_password(user.password_hash, password):
        await node.users.update(user.id, password_hash=await passwords.hash_password(password))
    return user


async def start(node: Node) -> None:
    """Install the faucet and start the demo in the background (called at startup)."""

    async def hook(user: User) -> None:
        await faucet(node, user)

    node.signup_hooks.append(hook)
    node.spawn(_demo(node))


async def _retry(what: str, make: Any) -> Any:
    delay = 0.5
    while True:
        try:
            return await make()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("%s not ready yet (%s), retrying", what, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def _demo(node: Node) -> None:
    from engine.seed import seed_defaults

    await seed_defaults(node.redis)
    for email, password in DEMO_USERS:
        user = await _retry("postgresql", lambda e=email, p=password: ensure_user(node, e, p))
        await credit(node, user.id, DEMO_FUNDS, "faucet")
        log.info("demo user %s / %s", email, password)
    me = secrets.token_hex(8)
    while not await _take_lease(node.redis, me):
        await asyncio.sleep(LEASE_S / 3)
    try:
        await _bots(node, me)
    finally:
        with contextlib.suppress(Exception):
            if (await node.redis.get(LEASE_KEY) or b"").decode() == me:
                await node.redis.delete(LEASE_KEY)


async def _take_lease(redis: Any, me: str) -> bool:
    try:
        return bool(await redis.set(LEASE_KEY, me, nx=True, ex=LEASE_S))
    except (RedisError, OSError) as exc:
        log.info("demo bots: lease not taken (%r), retrying", exc)
        return False


async def keep_lease(
    redis: Any,
    me: str,
    tasks: dict[str, asyncio.Task[Any]],
    factories: dict[str, Callable[[], Coroutine[Any, Any, None]]],
    every: float = LEASE_S / 3,
) -> None:
    """Renew the bots' lease and restart failed bots every ``every`` seconds, forever.

    Redis down or restarting fails one renewal, not the demo: the bots (clients of
    the web node, which answers 503 meanwhile) keep running and the next renewal
    retries. (A renewal that raised used to end the demo: every bot stopped for good
    after a Redis restart.)"""
    while True:
        await asyncio.sleep(every)
        try:
            await redis.set(LEASE_KEY, me, ex=LEASE_S)
        except (RedisError, OSError) as exc:
            log.warning("demo bots: lease not renewed (%r), retrying", exc)
        restart_failed(tasks, factories)


def restart_failed(
    tasks: dict[str, asyncio.Task[Any]],
    factories: dict[str, Callable[[], Coroutine[Any, Any, None]]],
) -> list[str]:
    """Start again every bot whose task ended with an exception (logged once per
    failure), so that its market stays alive; the names restarted. A bot that was
    cancelled or ended by itself (``stop`` set) is left alone."""
    restarted = []
    for name, task in list(tasks.items()):
        if not task.done() or task.cancelled() or task.exception() is None:
            continue
        log.warning("bot %s stopped: %r; restarting it", name, task.exception())
        tasks[name] = asyncio.create_task(factories[name](), name=name)
        restarted.append(name)
    return restarted


async def _bots(node: Node, me: str) -> None:
    from client.bots.market_maker import run_market_maker
    from client.bots.random_trader import run_random_trader
    from client.exchange import HftxClient

    settings = node.settings
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    url = f"http://{host}:{settings.port}"
    clients: list[Any] = []
    tasks: dict[str, asyncio.Task[Any]] = {}
    factories: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {}
    stop = asyncio.Event()
    try:
        for market, reference in REFERENCES.items():
            for kind in ("mm", "rt"):
                email = f"{kind}-{market.lower()}@bots.hftx.dev"
                password = secrets.token_urlsafe(18)
                user = await _retry(
                    "postgresql", lambda e=email, p=password: ensure_user(node, e, p)
                )
                await credit(node, user.id, BOT_FUNDS, "bot")
                client = HftxClient(url)
                clients.append(client)
                await _retry("web node", lambda c=client, e=email, p=password: c.login(e, p))
                name = f"demo:{kind}:{market}"
                if kind == "mm":
                    factories[name] = functools.partial(
                        run_market_maker, client, market, reference=reference, stop=stop
                    )
                else:
                    factories[name] = functools.partial(
                        run_random_trader, client, market, orders_per_second=1.0, stop=stop
                    )
                tasks[name] = asyncio.create_task(factories[name](), name=name)
        log.info("demo bots trading on %s", ", ".join(REFERENCES))
        log.warning(
            "\n\n  hftx demo is running: open %s\n  log in as %s / %s (or %s / %s),"
            "\n  or sign up: every new account gets demo funds.\n",
            url, *DEMO_USERS[0], *DEMO_USERS[1],
        )  # fmt: skip
        await keep_lease(node.redis, me, tasks, factories)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks.values(), timeout=5)
        for task in tasks.values():
            task.cancel()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
