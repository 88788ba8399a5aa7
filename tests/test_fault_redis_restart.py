"""Valkey restarted under load loses nothing.

Real processes on loopback: a Valkey with the append-only file, a fresh PostgreSQL
database, two web nodes, the settler, the drain and the arq worker. Users trade over
WebSocket and HTTP at a bounded pace while Valkey is shut down gracefully (SHUTDOWN
flushes the AOF) and started again on the same port and directory. Meanwhile every
request gets an answer: 503 ``UNAVAILABLE`` (or a normal one), never a hang. Without
restarting anything else, trading works again afterwards, and at the end: every
acknowledged order exists in Redis and PostgreSQL in the same state, every trade of
the market stream is in PostgreSQL once, balances equal the ledger and conserve,
no hold is left without its order, the streams are consumed, and a book subscriber
followed the restart without a gap.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import redis
import redis.asyncio as aredis

from client.book import BookStatus, LocalBook
from engine import accounts, keys
from engine import market as market_calls
from ops.processes import EmbeddedError
from ops.valkey import Valkey, start_valkey
from snapshots.reconcile import reconcile
from tests.test_e2e_support import (
    Exchange,
    Ws,
    eventually,
    exchange_env,
    fund,
    new_market,
    new_user,
    start_exchange,
    stop_processes,
)
from workers import streams

TRADERS = 4
PACE_S = 0.04  # per trader between requests: ~100 requests/s in all
ANSWER_TIMEOUT_S = 8.0  # a request unanswered this long is a hang
DOWN_S = 1.5  # Valkey stays down this long
GRACE_S = 2.0  # after Valkey is back, every process has reconnected within this
OPEN = {"NEW", "PARTIALLY_FILLED"}


# -- the servers and processes ----------------------------------------------------------


@dataclass
class Stack:
    """The running exchange, and its Valkey (restartable)."""

    exchange: Exchange
    valkey: Valkey
    redis: Any = None  # the test's own client (reconnects by itself)
    restarts: list[tuple[float, float]] = field(default_factory=list)  # (down, up)

    async def restart_valkey(self, down_s: float) -> None:
        """SHUTDOWN (the AOF flushed), ``down_s`` of outage, start on the same port/dir.

        Started from this thread: a server dies with the thread that started it."""
        down = time.monotonic()
        await asyncio.to_thread(_shutdown, self.valkey)
        await asyncio.sleep(down_s)
        for attempt in range(5):
            try:
                self.valkey = start_valkey(
                    self.valkey.directory, port=self.valkey.port, persistent=True
                )
                break
            except EmbeddedError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.2)
        self.restarts.append((down, time.monotonic()))


def _shutdown(vk: Valkey) -> None:
    client = redis.Redis(host=vk.host, port=vk.port, socket_timeout=5)
    try:
        client.shutdown()  # returns once the server closed the connection
    finally:
        client.close()
    vk.process.proc.wait(15)


@pytest.fixture
def stack_env(db_url: str) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="hftx-restart-", ignore_cleanup_errors=True) as tmp:
        logs = Path(tmp)
        stack = Stack(
            Exchange("", db_url, {}, logs), start_valkey(logs / "valkey", persistent=True)
        )
        env = {
            **exchange_env(stack.valkey.url, db_url, logs / "data"),
            "HFTX_LOG_LEVEL": "WARNING",
        }
        exchange = stack.exchange
        exchange.redis_url = stack.valkey.url
        exchange.env = env
        try:
            start_exchange(exchange, ("a", "b"), worker=True)
            yield stack
        finally:
            stop_processes(exchange.procs)
            stack.valkey.stop()


@pytest.fixture
async def stack(stack_env: Stack) -> AsyncIterator[Stack]:
    stack_env.redis = aredis.Redis.from_url(stack_env.valkey.url)
    try:
        yield stack_env
    finally:
        await stack_env.redis.aclose()


# -- the load -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    trader: int
    op: str
    sent: float
    done: float
    status: int
    code: str  # error code, "" on success


@dataclass
class Trader:
    """One user trading over one transport (a WebSocket or HTTP) of one node."""

    index: int
    user_id: str
    token: str
    ws: Ws | None
    http: httpx.AsyncClient | None
    answers: list[Answer] = field(default_factory=list)
    acked: dict[str, dict[str, Any]] = field(default_factory=dict)  # order id -> place result
    acked_at: dict[str, float] = field(default_factory=dict)
    canceled: set[str] = field(default_factory=set)  # cancels acknowledged

    async def call(self, op: str, payload: Any) -> tuple[int, Any]:
        """One request: (status, result or error object); raises on a hang."""
        sent = time.monotonic()
        body: Any
        if self.ws is not None:
            method = {"place": "order.place", "cancel": "order.cancel"}[op]
            answer = await self.ws.request(method, payload, timeout=ANSWER_TIMEOUT_S)
            status, body = int(answer["status"]), answer.get("result", answer.get("error"))
        else:
            assert self.http is not None
            if op == "place":
                r = await self.http.post("/orders", json=payload)
            else:
                r = await self.http.delete(f"/orders/{payload['order_id']}")
            status, body = r.status_code, r.json()
            if status != 200:
                body = body["error"]
        code = "" if status == 200 else str(body["code"])
        self.answers.append(Answer(self.index, op, sent, time.monotonic(), status, code))
        return status, body

    async def step(self, rng: random.Random, market: str) -> None:
        maybe_open = [oid for oid in self.acked if oid not in self.canceled]
        if maybe_open and rng.random() < 0.3:
            oid = rng.choice(maybe_open[-20:])
            status, _ = await self.call("cancel", {"order_id": oid})
            if status == 200:
                self.canceled.add(oid)
            return
        params = {
            "market": market,
            "side": rng.choice(["buy", "sell"]),
            "type": "limit",
            "price": f"{100 + rng.randint(-5, 5) / 100:.2f}",
            "amount": f"{rng.randint(1, 20) / 1000:.3f}",
        }
        sent = time.monotonic()
        status, body = await self.call("place", params)
        if status == 200:
            self.acked[body["id"]] = body
            self.acked_at[body["id"]] = sent


async def make_traders(stack: Stack, market: str) -> list[Trader]:
    ex = stack.exchange
    traders = []
    for i in range(TRADERS):
        user = await new_user(ex)
        await fund(ex, user, {"USD": "1000000", market.split("-")[0]: "10000"})
        node = "ab"[i % 2]
        if i < TRADERS // 2:  # WebSocket traders (one per node), then HTTP ones
            ws = await Ws.connect(ex.ws_url(node), user.token)
            traders.append(Trader(i, user.user_id, user.token, ws, None))
        else:
            http = ex.http(node, user.token)
            http.timeout = httpx.Timeout(ANSWER_TIMEOUT_S)
            traders.append(Trader(i, user.user_id, user.token, None, http))
    return traders


async def trade(trader: Trader, market: str, stop: asyncio.Event, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(100_000):  # bounded; ``stop`` ends it first
        if stop.is_set():
            return
        await trader.step(rng, market)
        await asyncio.sleep(PACE_S)


# -- the checks ---------------------------------------------------------------------------


async def settled(stack: Stack, market: str) -> bool:
    """The settler and the drain consumed everything; no transfer in flight."""
    r = stack.redis
    tail = await r.xrevrange(keys.market_stream(market), count=1)
    position = await r.get(f"{{m:{market}}}:stl")
    if tail and position != tail[0][0]:
        return False
    if await r.zcard("{g}:outbox"):
        return False
    names = await streams.discover(r)
    infos = await streams.groups_many(r, names)
    return not any(g.name == "drain" and (g.pending or g.lag) for gs in infos.values() for g in gs)


async def no_orphan_holds(stack: Stack, market: str, traders: list[Trader]) -> bool:
    """Every hold belongs to an order resting on the book (the worker released the
    holds of orders whose place never reached the market)."""
    for t in traders:
        for hold in await accounts.holds(stack.redis, t.user_id):
            order = await market_calls.get_order(stack.redis, market, hold.order_id)
            if order is None or order.status not in OPEN:
                return False
    return True


def check_answers(stack: Stack, traders: list[Trader]) -> None:
    answers = [a for t in traders for a in t.answers]
    allowed = {(200, ""), (503, "UNAVAILABLE"), (404, "UNKNOWN_ORDER")}
    odd = [a for a in answers if (a.status, a.code) not in allowed]
    assert not odd, odd[:5]
    assert not [a for a in answers if a.code == "UNKNOWN_ORDER" and a.op != "cancel"]
    ends = [down for down, _ in stack.restarts[1:]] + [float("inf")]
    for (down, up), end in zip(stack.restarts, ends, strict=True):
        during = [a for a in answers if down <= a.sent <= up]
        assert any(a.status == 503 for a in during), "the outage was not seen"
        # GRACE_S later every process has reconnected: no refusal, and everyone trades
        after = [a for a in answers if a.sent >= up + GRACE_S and a.done < end]
        assert not [a for a in after if a.status == 503], [a for a in after if a.status == 503][:5]
        for t in traders:
            assert sum(a.status == 200 for a in after if a.trader == t.index) >= 3, t.index
    slowest = max(a.done - a.sent for a in answers)
    assert slowest < ANSWER_TIMEOUT_S / 2, slowest  # refused at once, not after a timeout


async def check_orders(stack: Stack, market: str, traders: list[Trader]) -> None:
    """Every acknowledged order is in Redis and in PostgreSQL, in the same state."""
    acked = {oid: t for t in traders for oid in t.acked}
    assert len(acked) >= 50
    async with await psycopg.AsyncConnection.connect(stack.exchange.database_url) as conn:
        rows = await (
            await conn.execute(
                "SELECT id, user_id, status, amount, filled FROM orders WHERE id = ANY(%s)",
                (list(acked),),
            )
        ).fetchall()
    stored = {r[0]: r for r in rows}
    for oid, t in acked.items():
        order = await market_calls.get_order(stack.redis, market, oid)
        assert order is not None, oid
        assert order.user_id == t.user_id and 0 <= order.filled <= order.amount
        if oid in t.canceled:
            assert order.status == "CANCELED", (oid, order.status)
        assert oid in stored, f"order {oid} not in PostgreSQL"
        _, user_id, status, amount, filled = stored[oid]
        assert (user_id, amount) == (order.user_id, order.amount), oid
        if order.status in OPEN:  # PostgreSQL has an order's final state, and NEW before
            assert status == "NEW", (oid, status)
        else:
            assert (status, filled) == (order.status, order.filled), oid


async def check_trades(stack: Stack, market: str, traders: list[Trader]) -> None:
    """Every trade the engine emitted is in PostgreSQL once, and nothing else is."""
    emitted: list[int] = []
    for _id, fields in await stack.redis.xrange(keys.market_stream(market)):
        emitted += [ev["tid"] for ev in orjson.loads(fields[b"e"]) if ev["e"] == "trade"]
    assert len(emitted) >= 20 and emitted == list(range(1, len(emitted) + 1))
    async with await psycopg.AsyncConnection.connect(stack.exchange.database_url) as conn:
        rows = await (
            await conn.execute(
                "SELECT trade_id FROM trades WHERE market = %s ORDER BY trade_id", (market,)
            )
        ).fetchall()
    assert [r[0] for r in rows] == emitted
    answered = {f["trade_id"] for t in traders for o in t.acked.values() for f in o["fills"]}
    assert answered <= set(emitted)


async def check_book(stack: Stack, watcher: Ws, market: str) -> None:
    """The subscriber's book, built from the pushes across the restarts, has no gap or
    checksum mismatch and equals the engine's book."""
    async with httpx.AsyncClient(base_url=stack.exchange.url("a") + "/api/v1") as http:
        final = (await http.get(f"/markets/{market}/book", params={"depth": 50})).json()

    def build() -> LocalBook:
        book = LocalBook(market, depth=50)
        for push in list(watcher.pushes):
            if push.get("channel") == "book" and push.get("market") == market:
                status = book.apply(push)
                assert not status.needs_resubscribe, (status, push)
                assert status in (BookStatus.APPLIED, BookStatus.STALE)
        return book

    async def caught_up() -> LocalBook | None:
        book = build()
        return book if book.seq == final["seq"] else None

    book = await eventually(caught_up, timeout=10)
    assert [[p, s] for p, s in book.bids()] == [[p, s] for p, s in final["bids"]]
    assert [[p, s] for p, s in book.asks()] == [[p, s] for p, s in final["asks"]]


# -- the test -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("restarts", "between_s"), [(1, 4.0), pytest.param(3, 5.0, marks=pytest.mark.slow)]
)
async def test_valkey_restarted_under_load_loses_nothing(
    stack: Stack, restarts: int, between_s: float
) -> None:
    market = await new_market(stack.exchange)
    traders = await make_traders(stack, market)
    listener = next(t for t in traders if t.ws is not None)
    assert (await listener.ws.request("subscribe", {"channel": "orders"}))["status"] == 200  # type: ignore[union-attr]
    watcher = await Ws.connect(stack.exchange.ws_url("b"), traders[-1].token)
    book_sub = {"channel": "book", "markets": [market], "depth": 50}
    assert (await watcher.request("subscribe", book_sub))["status"] == 200

    stop = asyncio.Event()
    load = [asyncio.create_task(trade(t, market, stop, seed=t.index)) for t in traders]
    try:
        await asyncio.sleep(3.0)
        for _ in range(restarts):
            await stack.restart_valkey(DOWN_S)
            await asyncio.sleep(between_s)
    finally:
        stop.set()
        await asyncio.gather(*load)

    crashed = [name for name, p in stack.exchange.procs.items() if p.poll() is not None]
    assert not crashed, {name: stack.exchange.log_tail(name) for name in crashed}
    # Redis down is a warning, not a traceback (a cron run that meets it is skipped)
    own = ["a", "b", "settler", "drain", "worker"]
    traced = [n for n in own if "Traceback" in stack.exchange.log_tail(n, 10**6)]
    assert not traced, {n: stack.exchange.log_tail(n) for n in traced}
    check_answers(stack, traders)

    # private pushes reach the sockets again: the last order acknowledged after the
    # restart is pushed to the listener
    up = stack.restarts[-1][1]
    later = [oid for oid, at in listener.acked_at.items() if at > up + GRACE_S]
    assert later
    await listener.ws.wait_push(  # type: ignore[union-attr]
        lambda m: m.get("channel") == "orders" and m["order"]["id"] == later[-1]
    )

    await eventually(lambda: settled(stack, market), timeout=30)
    await eventually(lambda: no_orphan_holds(stack, market, traders), timeout=20)
    await eventually(lambda: settled(stack, market), timeout=30)
    await check_orders(stack, market, traders)
    await check_trades(stack, market, traders)
    await check_book(stack, watcher, market)
    rep = await reconcile(stack.redis, stack.exchange.database_url, wait_s=20)
    assert rep.ok, (rep.mismatches[:5], rep.not_drained[:5])
    assert rep.conserved, rep.conservation

    for t in traders:
        if t.ws is not None:
            await t.ws.close()
        if t.http is not None:
            await t.http.aclose()
    await watcher.close()
