"""Acceptance pass 8: what a trader sees across a restart of ``./hftx run``.

Black-box, through the public interfaces only (HTTP ``/api/v1``, WebSocket ``/ws``):
each test runs the README's run command (``./hftx run`` is ``python -m ops.supervisor``
in the venv) with embedded Valkey and PostgreSQL in a data dir of its own, trades on
it, stops it (SIGTERM, or SIGKILL of its process group) and runs it again on the same
data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets

from ops.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
ADMIN = {"email": "admin@restart.hftx.dev", "password": "admin-restart-password"}
PASSWORD = "user-restart-password"
MARKET = "BTC-USD"


def _processes_of(data_dir: Path) -> list[int]:
    """Our processes that run for ``data_dir`` (its path is in their environment:
    the supervisor, the embedded servers, every Procfile process)."""
    needle = f"HFTX_DATA_DIR={data_dir}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            if needle in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                found.append(int(entry))
    return found


def _commands(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        with contextlib.suppress(OSError):
            out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Run:
    """``./hftx run`` on one data dir, started and stopped as often as a test likes."""

    data_dir: Path
    cwd: Path
    port: int = field(default_factory=free_port)
    valkey_port: int = field(default_factory=free_port)
    pg_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def log(self) -> Path:
        return self.cwd / f"run{self.runs}.log"

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def start(self, timeout: float = 60) -> None:
        """Start it (in a session of its own, as ``setsid ./hftx run``) and wait until
        its web node is ready; the supervisor must still be running then."""
        self.runs += 1
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("HFTX_") and k not in ("REDIS_URL", "DATABASE_URL", "PORT")
        }
        env |= {
            "HFTX_DATA_DIR": str(self.data_dir),
            "PORT": str(self.port),
            "HFTX_VALKEY_PORT": str(self.valkey_port),
            "HFTX_PG_PORT": str(self.pg_port),
            "HFTX_ADMIN_EMAIL": ADMIN["email"],
            "HFTX_ADMIN_PASSWORD": ADMIN["password"],
        }
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ops.supervisor"],
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:  # this run's web node listens (its log says so) and is ready
            assert self.proc.poll() is None, f"the run exited:\n{self.log_tail()}"
            if "Uvicorn running on" in self.log.read_text(errors="replace"):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                        return
            assert time.monotonic() < deadline, f"not ready:\n{self.log_tail()}"
            time.sleep(0.1)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM to the supervisor, as Ctrl-C or a service manager would; its code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        """SIGKILL to the run's process group (``kill -9 -- -PGID``)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def wait_gone(self, timeout: float = 15) -> list[int]:
        """Wait until no process of this data dir is left; those still alive at the end."""
        deadline = time.monotonic() + timeout
        while True:
            left = [p for p in _processes_of(self.data_dir) if _alive(p)]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.stop()
        for pid in self.wait_gone(timeout=1):  # left over by a failed test only
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    r = Run(tmp_path / "data", tmp_path)
    try:
        yield r
    finally:
        r.cleanup()


# ------------------------------------------------------------------ helpers


class Api:
    def __init__(self, run: Run) -> None:
        self.http = httpx.AsyncClient(base_url=run.url + "/api/v1", timeout=20)

    async def call(
        self, method: str, path: str, token: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.http.request(method, path, headers=headers, **kw)

    async def ok(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        r = await self.call(method, path, token, **kw)
        assert r.status_code in (200, 201), (method, path, r.status_code, r.text)
        return r.json()

    async def login(self, email: str, password: str = PASSWORD) -> str:
        body = {"email": email, "password": password}
        return str((await self.ok("POST", "/auth/login", json=body))["access_token"])

    async def user(self, name: str) -> str:
        await self.ok("POST", "/auth/signup", json={"email": f"{name}@r.io", "password": PASSWORD})
        return await self.login(f"{name}@r.io")

    async def address(self, token: str, asset: str) -> str:
        rows = await self.ok("GET", "/addresses", token)
        return str(next(a["address"] for a in rows if a["asset"] == asset))

    async def deposit(self, admin: str, token: str, asset: str, amount: str, key: str) -> None:
        body = {
            "deposit_id": key,
            "address": await self.address(token, asset),
            "asset": asset,
            "amount": amount,
        }
        await self.ok("POST", "/admin/deposits", admin, json=body)

    async def order(self, token: str, side: str, amount: str, price: str, coid: str) -> Any:
        body = {
            "market": MARKET,
            "type": "limit",
            "side": side,
            "amount": amount,
            "price": price,
            "client_order_id": coid,
        }
        return await self.ok("POST", "/orders", token, json=body)

    async def history(self, path: str, token: str) -> list[Any]:
        """Every page of a paged history route."""
        out: list[Any] = []
        cursor = ""
        while True:
            r = await self.call("GET", path + (f"&cursor={cursor}" if cursor else ""), token)
            assert r.status_code == 200, r.text
            out += r.json()
            cursor = r.headers.get("x-next-cursor", "")
            if not cursor:
                return out

    async def caught_up(self, timeout: float = 20) -> None:
        """Wait until the settler and the drain have done everything the engine did
        (``/metrics``: settler lag and drain backlog 0 on every market)."""
        deadline = time.monotonic() + timeout
        base = str(self.http.base_url).removesuffix("/api/v1/").removesuffix("/api/v1")
        while True:
            text = (await self.http.get(base + "/metrics")).text
            behind = [
                line
                for line in text.splitlines()
                if line.startswith(("hftx_settler_lag_seconds{", "hftx_drain_backlog_entries{"))
                and float(line.rsplit(" ", 1)[1]) != 0
            ]
            if not behind:
                return
            assert time.monotonic() < deadline, behind
            await asyncio.sleep(0.1)

    async def aclose(self) -> None:
        await self.http.aclose()


def _without_ts(value: Any) -> Any:
    """``value`` without the ``ts`` of answers read "now" (book, ticker)."""
    if isinstance(value, dict):
        return {k: _without_ts(v) for k, v in value.items() if k != "ts"}
    if isinstance(value, list):
        return [_without_ts(v) for v in value]
    return value


async def _seen(api: Api, tokens: dict[str, str]) -> dict[str, Any]:
    """Everything a trader and the public can read, per user and route."""
    seen: dict[str, Any] = {}
    for name, token in tokens.items():
        for path in (
            "/orders",
            "/orders?status=all&limit=1000",
            "/balances",
            "/fills?limit=1000",
            "/withdrawals",
            "/addresses",
            "/notifications",
            "/me",
        ):
            seen[f"{name} {path}"] = await api.ok("GET", path, token)
        for order in seen[f"{name} /orders?status=all&limit=1000"]:
            seen[f"{name} order {order['id']}"] = await api.ok(
                "GET", f"/orders/{order['id']}", token
            )
            if order["client_order_id"]:
                seen[f"{name} order {order['client_order_id']}"] = await api.ok(
                    "GET", f"/orders/client:{order['client_order_id']}", token
                )
    for path in (
        f"/markets/{MARKET}/book?depth=50",
        f"/markets/{MARKET}/ticker",
        f"/markets/{MARKET}/trades?limit=100",
        f"/markets/{MARKET}/candles?interval=1m",
        "/markets",
    ):
        seen[path] = _without_ts(await api.ok("GET", path))
    return seen


# ------------------------------------------------------------------ SIGTERM


async def _watch(run: Run, token: str, pushes: list[Any]) -> int | None:
    """A WebSocket of ``token`` subscribed to its orders and the book until the node
    closes it; every push in ``pushes``; the close code."""
    async with websockets.connect(run.ws_url) as ws:
        for n, (method, params) in enumerate(
            [
                ("auth", {"token": token}),
                ("subscribe", {"channel": "orders"}),
                ("subscribe", {"channel": "book", "markets": [MARKET]}),
            ]
        ):
            await ws.send(orjson.dumps({"id": n, "method": method, "params": params}).decode())
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                message = orjson.loads(raw)
                if "id" not in message:
                    pushes.append(message)
        return ws.close_code


async def test_a_sigterm_restart_keeps_what_traders_see(run: Run) -> None:
    """Open orders with their fills, balances, fills, order history, withdrawals,
    addresses, notifications, the book (levels, seq, checksum), ticker, trades and
    candles read the same after SIGTERM and a new run on the same data dir; tokens
    issued before stay valid, a logout stays one; a socket open during the SIGTERM
    gets ``status/shutdown`` then 1012, and one sending orders meanwhile got an answer
    for every order the node placed; ``client_order_id`` stays taken; trade ids and
    seq continue."""
    run.start()
    api = Api(run)
    try:
        admin = await api.login(ADMIN["email"], ADMIN["password"])
        alice, bob, carol, dave, erin = [
            await api.user(n) for n in ("alice", "bob", "carol", "dave", "erin")
        ]
        for token, who in ((alice, "a"), (bob, "b")):
            await api.deposit(admin, token, "USD", "100000", f"{who}-usd")
            await api.deposit(admin, token, "BTC", "10", f"{who}-btc")
        await api.order(alice, "sell", "1", "30000", "a-s1")
        await api.order(alice, "sell", "2", "30100", "a-s2")
        await api.order(alice, "buy", "1", "29000", "a-b1")
        await api.order(bob, "buy", "0.4", "30000", "b-t1")  # a-s1 partly filled
        await api.order(bob, "sell", "0.3", "28000", "b-t2")  # a-b1 partly filled
        gone = await api.order(bob, "buy", "0.1", "20000", "b-c1")
        await api.ok("DELETE", f"/orders/{gone['id']}", bob)
        transfer = {
            "transfer_id": "t1",
            "asset": "USD",
            "amount": "123.45",
            "to_address": await api.address(carol, "USD"),
        }
        await api.ok("POST", "/transfers", alice, json=transfer)
        withdrawal = {
            "withdrawal_id": "w-bob-1",
            "asset": "BTC",
            "amount": "0.5",
            "address": "extaddr123",
        }
        await api.ok("POST", "/withdrawals", bob, json=withdrawal)
        offer = await api.ok(
            "POST",
            "/p2p/offers",
            alice,
            json={
                "side": "sell",
                "asset": "BTC",
                "fiat": "EUR",
                "price": "30000",
                "amount": "0.5",
                "min_amount": "0.01",
                "max_amount": "0.5",
                "payment_methods": ["SEPA"],
                "payment_window": 30,
            },
        )
        await api.ok("POST", f"/p2p/offers/{offer['id']}/take", carol, json={"amount": "0.1"})
        await api.ok("POST", "/auth/logout", dave, json={})
        tokens = {"alice": alice, "bob": bob, "carol": carol, "admin": admin}
        before = await _seen(api, tokens)
        assert len(before["alice /orders"]) == 3 and before["alice /notifications"]
        assert before["bob /withdrawals"][0]["status"] == "PENDING"

        pushes: list[Any] = []
        watcher = asyncio.create_task(_watch(run, alice, pushes))
        while not any(p.get("type") == "snapshot" for p in pushes):  # subscribed
            assert not watcher.done(), watcher.result()
            await asyncio.sleep(0.02)
        # erin keeps placing orders (on another market) while the run stops
        await api.deposit(admin, erin, "USD", "10000", "e-usd")
        placed: list[Any] = []
        prices = [f"{1000 + i}.00" for i in range(20)]
        burst = asyncio.create_task(_burst(run, erin, "ETH-USD", "buy", prices, "e", 5000, placed))
        while len(placed) < 100:
            assert not burst.done()
            await asyncio.sleep(0.005)
        assert await asyncio.to_thread(run.stop) == 143, run.log_tail()
        assert await asyncio.wait_for(watcher, 10) == 1012
        assert pushes[-1] == {"channel": "status", "type": "shutdown"}
        await asyncio.wait_for(burst, 10)
        assert len(placed) < 5000

        run.start()
        await api.caught_up()
        after = await _seen(api, tokens)
        assert after == before
        # every order the node placed for erin before it stopped was answered
        erins = await api.history("/orders?status=all&limit=1000", erin)
        assert sorted(o["id"] for o in erins) == sorted(o["id"] for o in placed)
        r = await api.call("GET", "/me", dave)
        assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"

        r = await api.call(
            "POST",
            "/orders",
            alice,
            json={
                "market": MARKET,
                "type": "limit",
                "side": "sell",
                "amount": "1",
                "price": "31000",
                "client_order_id": "a-s1",
            },
        )
        assert r.status_code == 409, r.text
        assert r.json()["error"]["order"]["id"] == before["alice order a-s1"]["id"]
        assert await api.ok("GET", "/orders", alice) == before["alice /orders"]  # not placed

        book = before[f"/markets/{MARKET}/book?depth=50"]
        trades = before[f"/markets/{MARKET}/trades?limit=100"]
        new = await api.order(bob, "buy", "0.1", "30000", "b-after")
        assert [f["trade_id"] for f in new["fills"]] == [trades[0]["trade_id"] + 1]
        latest = (await api.ok("GET", f"/markets/{MARKET}/trades?limit=1"))[0]
        assert latest["trade_id"] == trades[0]["trade_id"] + 1 and latest["seq"] > book["seq"]
        ticker = await api.ok("GET", f"/markets/{MARKET}/ticker")
        volume = Decimal(before[f"/markets/{MARKET}/ticker"]["volume_24h"]) + Decimal("0.1")
        assert Decimal(ticker["volume_24h"]) == volume and ticker["seq"] > book["seq"]
        candles = await api.ok("GET", f"/markets/{MARKET}/candles?interval=1d")
        assert sum(c["trades"] for c in candles) == len(trades) + 1
    finally:
        await api.aclose()


# ------------------------------------------------------------------ kill -9


async def _burst(
    run: Run,
    token: str,
    market: str,
    side: str,
    prices: list[str],
    tag: str,
    n: int,
    acks: list[Any],
) -> None:
    """Up to ``n`` pipelined limit orders (size ``min_size``, ``prices`` in turn) on one
    socket, sent while the answers are read; each accepted order into ``acks`` (until
    the socket ends with the run)."""
    size = {"BTC-USD": "0.001", "ETH-USD": "0.001"}[market]
    with contextlib.suppress(websockets.ConnectionClosed, OSError):
        async with websockets.connect(run.ws_url, max_size=None) as ws:
            auth = {"id": 0, "method": "auth", "params": {"token": token}}
            await ws.send(orjson.dumps(auth).decode())
            await ws.recv()

            async def send() -> None:
                for i in range(n):
                    params = {
                        "market": market,
                        "type": "limit",
                        "side": side,
                        "amount": size,
                        "price": prices[i % len(prices)],
                        "client_order_id": f"{tag}-{i}",
                    }
                    message = {"id": i + 1, "method": "order.place", "params": params}
                    await ws.send(orjson.dumps(message).decode())
                    if i % 50 == 49:
                        await asyncio.sleep(0.005)  # the answers keep up

            sender = asyncio.create_task(send())
            try:
                async for raw in ws:
                    answer = orjson.loads(raw)
                    if answer.get("id"):
                        assert answer["status"] == 200, answer
                        acks.append(answer["result"])
            finally:
                sender.cancel()


async def test_kill_9_of_the_run_then_a_new_run_loses_nothing(run: Run) -> None:
    """``kill -9`` of the run's process group during a burst of orders: nothing of
    that run is left running (no orphan keeps the port or talks to the next run's
    servers), the next run starts on the same data dir, and every order, fill and
    balance a trader was told about is there, exactly once."""
    run.start()
    api = Api(run)
    try:
        admin = await api.login(ADMIN["email"], ADMIN["password"])
        alice, bob = await api.user("alice"), await api.user("bob")
        for token, who in ((alice, "a"), (bob, "b")):
            await api.deposit(admin, token, "USD", "100000", f"{who}-usd")
            await api.deposit(admin, token, "BTC", "10", f"{who}-btc")
        acks: list[Any] = []
        bids = [str(29500 + 5 * i) for i in range(20)]
        asks = [str(29400 + 5 * i) for i in range(20)]
        bursts = [
            asyncio.create_task(_burst(run, alice, MARKET, "buy", bids, "a", 400, acks)),
            asyncio.create_task(_burst(run, bob, MARKET, "sell", asks, "b", 400, acks)),
        ]
        while len(acks) < 200:
            assert not all(b.done() for b in bursts), len(acks)
            await asyncio.sleep(0.005)
        run.kill9()
        left = await asyncio.to_thread(run.wait_gone)
        assert not left, f"still running after kill -9 of the run: {_commands(left)}"
        await asyncio.wait_for(asyncio.gather(*bursts), 10)
        assert 200 <= len(acks) < 800

        run.start()
        await api.caught_up()
        orders = {}
        fills: dict[int, list[Any]] = {}
        for token in (alice, bob):
            for o in await api.history("/orders?status=all&limit=1000", token):
                orders[o["id"]] = o
            for f in await api.history("/fills?limit=1000", token):
                fills.setdefault(f["trade_id"], []).append(f)
        for ack in acks:
            order = orders[ack["id"]]
            assert order["client_order_id"] == ack["client_order_id"]
            assert Decimal(order["filled"]) >= Decimal(ack["filled"])
            for fill in ack["fills"]:
                assert fill["trade_id"] in fills
        for order in orders.values():
            mine = [f for fs in fills.values() for f in fs if f["order_id"] == order["id"]]
            assert Decimal(order["filled"]) == sum(Decimal(f["size"]) for f in mine), order
        assert all(len(fs) == 2 for fs in fills.values())  # maker and taker, once each
        trades = await api.ok("GET", f"/markets/{MARKET}/trades?limit=1000")
        ids = [t["trade_id"] for t in trades]
        assert sorted(ids) == list(range(1, len(ids) + 1)) == sorted(fills)

        totals: dict[str, Decimal] = {}
        for token, path in ((alice, "/balances"), (bob, "/balances"), (admin, "/admin/fees")):
            for b in await api.ok("GET", path, token):
                totals[b["asset"]] = totals.get(b["asset"], Decimal(0)) + Decimal(b["total"])
        assert totals["USD"] == 200000 and totals["BTC"] == 20  # conservation

        ask = await api.order(alice, "sell", "0.001", "40000", "after-ask")
        bid = await api.order(bob, "buy", "0.001", "40000", "after-bid")
        assert ask["status"] == "NEW" and bid["fills"][0]["trade_id"] == len(ids) + 1
    finally:
        await api.aclose()
