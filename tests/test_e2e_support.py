"""Real web nodes for end-to-end tests (a pytest plugin: ``pytest_plugins = [...]``).

The session fixture ``exchange`` starts, on free loopback ports and in a temp
dir: a Valkey of its own, a fresh database in the session PostgreSQL (migrated),
the settler, the drain, and three ``python -m api`` processes (uvicorn): nodes ``a`` and
``b`` with default limits and node ``strict`` with tiny limits for the limit tests.
Tests isolate themselves with fresh users and markets (``new_user``,
``new_market``), never by flushing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import websockets

from client.backoff import Backoff
from client.exchange import HftxClient
from ops.processes import free_port
from tests import servers

ROOT = Path(__file__).resolve().parent.parent
ADMIN_EMAIL = "admin@e2e.hftx.dev"
ADMIN_PASSWORD = "admin-e2e-password"
PASSWORD = "user-e2e-password"
ALLOWED_ORIGIN = "https://allowed.example"
STRICT_LIMITS = {
    "HFTX_USER_RATE": "100",
    "HFTX_USER_BURST": "300",
    "HFTX_FLOOD_REFUSALS": "50",
    "HFTX_WS_QUEUE_MSGS": "64",
    "HFTX_WS_CONNS_PER_USER": "3",
    "HFTX_WS_MAX_FRAME": "4096",
    "HFTX_HTTP_MAX_BODY": "4096",
    "HFTX_WS_AUTH_TIMEOUT": "2",
}


@dataclass
class Exchange:
    """The running exchange of the e2e session."""

    redis_url: str
    database_url: str
    nodes: dict[str, str]  # name -> base URL
    logs: Path
    admin_token: str = ""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def url(self, node: str = "a") -> str:
        return self.nodes[node]

    def ws_url(self, node: str = "a") -> str:
        return self.nodes[node].replace("http://", "ws://") + "/ws"

    def http(self, node: str = "a", token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.nodes[node] + "/api/v1", headers=headers, timeout=20)

    def admin(self, node: str = "a") -> httpx.AsyncClient:
        return self.http(node, self.admin_token)

    def log_tail(self, name: str, lines: int = 60) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _create_database(pg_url: str) -> str:
    name = f"hftx_e2e_{secrets.token_hex(4)}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base, _, _ = pg_url.rpartition("/")
    return f"{base}/{name}"


def _spawn(name: str, args: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    out = (logs / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
    )


def _wait_ready(exchange: Exchange, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    url = exchange.nodes[name] + "/readyz"
    while True:
        proc = exchange.procs[name]
        if proc.poll() is not None:
            raise RuntimeError(f"node {name} exited:\n{exchange.log_tail(name)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"node {name} not ready:\n{exchange.log_tail(name)}")
        time.sleep(0.1)


@contextlib.contextmanager
def extra_node(
    exchange: Exchange, name: str, *, port: int | None = None, ready: str = "/healthz", **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """One more web node of ``exchange`` (its environment plus ``env``) on ``port``
    (default: a free one): ``(base URL, process)`` once ``ready`` answers 200 (within
    60 s); killed on exit if still running. ``/healthz`` needs no PostgreSQL."""
    port = port or free_port()
    proc = _spawn(name, ["-m", "api", "--port", str(port)], {**exchange.env, **env}, exchange.logs)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + ready, timeout=1).status_code == 200:
                    break
            assert proc.poll() is None, exchange.log_tail(name)
            assert time.monotonic() < deadline, exchange.log_tail(name)
            time.sleep(0.1)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


class LinkCutter:
    """A loopback TCP relay to ``127.0.0.1:target`` whose live links can be cut."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.accepted = 0
        self.down = False
        self._links: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> LinkCutter:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self, *, stay_down: bool = False) -> None:
        """Abort the live links; with ``stay_down`` refuse new ones until :meth:`up`."""
        self.down = stay_down
        for writer in self._links:
            writer.transport.abort()
        self._links.clear()

    def up(self) -> None:
        self.down = False

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._links += [writer, up_writer]
        pipes = [
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        ]
        self._tasks.update(pipes)
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for pipe in pipes:
            pipe.cancel()
            self._tasks.discard(pipe)
        for w in (writer, up_writer):
            w.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


def _login(base: str, email: str, password: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.post(f"{base}/api/v1/auth/login", json={"email": email, "password": password})
        if r.status_code == 200:
            return str(r.json()["access_token"])
        if time.monotonic() > deadline:
            raise RuntimeError(f"admin login failed: {r.status_code} {r.text}")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def exchange(pg_url: str) -> Iterator[Exchange]:
    with (
        servers.valkey_server() as redis_url,
        tempfile.TemporaryDirectory(prefix="hftx-e2e-") as tmp,
    ):
        database_url = _create_database(pg_url)
        logs = Path(tmp)
        env = {
            **exchange_env(redis_url, database_url, logs / "data"),
            "HFTX_ALLOWED_ORIGINS": ALLOWED_ORIGIN,
            "LOG_LEVEL": "INFO",
        }
        exchange = Exchange(redis_url, database_url, {}, logs, env=env)
        try:
            start_exchange(exchange, ("a", "b", "strict"), node_env={"strict": STRICT_LIMITS})
            yield exchange
        finally:
            stop_processes(exchange.procs)


ARQ_WORKER = ["-m", "arq", "--custom-log-dict", "ops.logconfig.ARQ", "workers.jobs.WorkerSettings"]


def start_exchange(
    exchange: Exchange,
    nodes: tuple[str, ...],
    *,
    node_env: dict[str, dict[str, str]] | None = None,
    worker: bool = False,
) -> None:
    """Start the exchange's processes with ``exchange.env``, logs in ``exchange.logs``:
    the release step (Lua library, SQL migrations, default assets and markets), the
    settler, the drain, the arq worker if asked, and one web node per name on a free
    port (``node_env`` adds to a node's environment); returns once every node is
    ready and the admin is logged in. The caller stops ``exchange.procs``."""
    env, logs = exchange.env, exchange.logs
    subprocess.run(
        [sys.executable, "-m", "ops.release"], cwd=ROOT, env=env, check=True,
        stdout=(logs / "release.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    exchange.procs["settler"] = _spawn("settler", ["-m", "workers.settler"], env, logs)
    exchange.procs["drain"] = _spawn("drain", ["-m", "workers.drain"], env, logs)
    if worker:
        exchange.procs["worker"] = _spawn("worker", ARQ_WORKER, env, logs)
    for name in nodes:
        port = free_port()
        exchange.nodes[name] = f"http://127.0.0.1:{port}"
        extra = (node_env or {}).get(name, {})
        exchange.procs[name] = _spawn(
            name, ["-m", "api", "--port", str(port)], {**env, **extra}, logs
        )
    for name in nodes:
        _wait_ready(exchange, name)
    exchange.admin_token = _login(exchange.url("a"), ADMIN_EMAIL, ADMIN_PASSWORD)


# -- helpers -----------------------------------------------------------------------


def exchange_env(redis_url: str, database_url: str, data_dir: Path) -> dict[str, str]:
    """The environment of the exchange's processes in tests: these servers, a test
    admin, rate limits far above what a test sends, no demo."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "HFTX_DATA_DIR": str(data_dir),
        "HFTX_JWT_SECRET": secrets.token_urlsafe(48),
        "HFTX_ADMIN_EMAIL": ADMIN_EMAIL,
        "HFTX_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "HFTX_USER_RATE": "20000",
        "HFTX_USER_BURST": "20000",
        "HFTX_IP_RATE": "20000",
        "HFTX_IP_BURST": "20000",
        "HFTX_SIGNUP_RATE": "1000",
        "HFTX_SIGNUP_BURST": "1000",
        "HFTX_DEMO": "0",
        # read-your-writes waits: generous on a loaded test machine (tests pause workers)
        "HFTX_SETTLE_WAIT": "5",
        "HFTX_HISTORY_WAIT": "5",
        "PYTHONUNBUFFERED": "1",
    }


def acceptance_target(request: pytest.FixtureRequest) -> Exchange:
    """The exchange the acceptance tests drive: a live one at ``HFTX_ACCEPT_URL`` (with
    ``HFTX_ACCEPT_ADMIN_EMAIL`` / ``_PASSWORD``), else the e2e session exchange."""
    url = os.environ.get("HFTX_ACCEPT_URL")
    if not url:
        exchange: Exchange = request.getfixturevalue("exchange")
        return exchange
    r = httpx.post(
        f"{url}/api/v1/auth/login",
        json={
            "email": os.environ["HFTX_ACCEPT_ADMIN_EMAIL"],
            "password": os.environ["HFTX_ACCEPT_ADMIN_PASSWORD"],
        },
    )
    assert r.status_code == 200, r.text
    return Exchange("", "", {"a": url, "b": url}, Path("."), r.json()["access_token"])


@pytest.fixture(scope="session")
def live(request: pytest.FixtureRequest) -> Exchange:
    """The exchange the acceptance tests drive (:func:`acceptance_target`)."""
    return acceptance_target(request)


@pytest.fixture
async def sockets() -> AsyncIterator[list[Ws]]:
    """Sockets a test opens with :func:`connect`; all closed at the end."""
    opened: list[Ws] = []
    yield opened
    for ws in opened:
        await ws.close()


async def connect(exchange: Exchange, sockets: list[Ws], user: User, node: str = "a") -> Ws:
    """An authenticated socket of ``user`` on ``node``, closed by the ``sockets`` fixture."""
    ws = await Ws.connect(exchange.ws_url(node), user.token)
    sockets.append(ws)
    return ws


async def maker_and_taker(
    exchange: Exchange, sockets: list[Ws], maker_funds: dict[str, str],
    taker_funds: dict[str, str],
) -> tuple[User, User, Ws, Ws]:  # fmt: skip
    """Two new users funded with these amounts, each with a socket on node a."""
    maker, taker = await new_user(exchange), await new_user(exchange)
    await fund(exchange, maker, maker_funds)
    await fund(exchange, taker, taker_funds)
    maker_ws = await connect(exchange, sockets, maker)
    return maker, taker, maker_ws, await connect(exchange, sockets, taker)


def stop_processes(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process, then wait for each (SIGKILL after 10 s)."""
    for proc in procs.values():
        proc.terminate()
    for proc in procs.values():
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def unique(prefix: str = "") -> str:
    return prefix + uuid.uuid4().hex[:10]


@dataclass
class User:
    user_id: str
    email: str
    token: str


def limit(market: str, side: str, amount: Any, price: Any, **extra: Any) -> dict[str, Any]:
    """``order.place`` params of a limit order (amount and price as given: decimal strings,
    or anything else for bad-input tests)."""
    return {"market": market, "side": side, "type": "limit", "amount": amount, "price": price,
            **extra}  # fmt: skip


Trader = Callable[..., Awaitable[HftxClient]]
FAST = Backoff(base=0.05, factor=2.0, cap=0.5)  # client reconnects, quick in tests


@pytest.fixture
async def trader(exchange: Exchange) -> AsyncIterator[Trader]:
    """Make logged-in clients of fresh, funded users; all are closed at the end."""
    made: list[HftxClient] = []

    async def make(node: str = "a", funds: dict[str, str] | None = None) -> HftxClient:
        user = await new_user(exchange, node)
        if funds:
            await fund(exchange, user, funds)
        client = HftxClient(exchange.url(node), backoff=FAST, timeout=10)
        made.append(client)
        await client.login(user.email, PASSWORD)
        return client

    yield make
    for client in made:
        await client.close()


async def new_user(exchange: Exchange, node: str = "a") -> User:
    email = f"{unique('u')}@e2e.hftx.dev"
    async with exchange.http(node) as http:
        r = await http.post("/auth/signup", json={"email": email, "password": PASSWORD})
        assert r.status_code == 201, r.text
        user_id = r.json()["user_id"]
        r = await http.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
    return User(user_id, email, r.json()["access_token"])


async def fund(exchange: Exchange, user: User, amounts: dict[str, str]) -> None:
    async with exchange.http("a", user.token) as http:
        addresses = {a["asset"]: a["address"] for a in (await http.get("/addresses")).json()}
    async with exchange.admin() as admin:
        for asset, amount in amounts.items():
            r = await admin.post(
                "/admin/deposits",
                json={
                    "deposit_id": unique("dep-"),
                    "address": addresses[asset],
                    "asset": asset,
                    "amount": amount,
                },
            )
            assert r.status_code == 200, r.text


async def new_market(exchange: Exchange, **overrides: Any) -> str:
    """A fresh market ``<new asset>-USD``: price 0.01, size 0.001, fees 10/20 bps."""
    base = "T" + uuid.uuid4().hex[:8].upper()
    async with exchange.admin() as admin:
        r = await admin.post("/admin/assets", json={"symbol": base, "scale": 8})
        assert r.status_code == 200, r.text
        r = await admin.post("/admin/assets", json={"symbol": "USD", "scale": 8})
        assert r.status_code == 200, r.text
        spec = {
            "id": f"{base}-USD",
            "base": base,
            "quote": "USD",
            "price_increment": "0.01",
            "size_increment": "0.001",
            "min_size": "0.001",
            "maker_fee_bps": 10,
            "taker_fee_bps": 20,
            **overrides,
        }
        r = await admin.post("/admin/markets", json=spec)
        assert r.status_code == 200, r.text
    return f"{base}-USD"


async def balances(exchange: Exchange, user: User) -> dict[str, dict[str, str]]:
    async with exchange.http("a", user.token) as http:
        r = await http.get("/balances")
        assert r.status_code == 200, r.text
        return {b["asset"]: b for b in r.json()}


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Await ``check()`` until it returns a truthy value (or raise its last failure)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = await check()
            if value:
                return value
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


class Ws:
    """A WebSocket client: numbered requests matched to answers, pushes collected."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.next_id = 0
        self.answers: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self.pushes: list[dict[str, Any]] = []
        self.pushed = asyncio.Event()
        self.closed: asyncio.Future[tuple[int | None, str]] = (
            asyncio.get_running_loop().create_future()
        )
        self.unmatched: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, token: str | None = None, **kwargs: Any) -> Ws:
        socket = await websockets.connect(url, max_size=2**24, **kwargs)
        ws = cls(socket)
        if token is not None:
            answer = await ws.request("auth", {"token": token})
            assert answer["status"] == 200, answer
        return ws

    async def _read(self) -> None:
        try:
            async for raw in self.socket:
                message = orjson.loads(raw)
                if "id" in message and "status" in message:
                    future = self.answers.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(message)
                    else:
                        self.unmatched.append(message)
                else:
                    self.pushes.append(message)
                    self.pushed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            rcvd = self.socket.protocol.close_rcvd
            if not self.closed.done():
                self.closed.set_result((rcvd.code, rcvd.reason) if rcvd else (None, ""))
            for future in self.answers.values():
                if not future.done():
                    future.set_exception(ConnectionError("closed"))

    async def send(self, message: Any) -> None:
        await self.socket.send(
            message if isinstance(message, str) else orjson.dumps(message).decode()
        )

    async def request(
        self, method: str, params: Any = None, *, timeout: float = 10.0, **envelope: Any
    ) -> dict[str, Any]:
        self.next_id += 1
        req_id = envelope.pop("id", self.next_id)
        future = asyncio.get_running_loop().create_future()
        self.answers[req_id] = future
        message: dict[str, Any] = {"id": req_id, "method": method, **envelope}
        if params is not None:
            message["params"] = params
        await self.send(message)
        return await asyncio.wait_for(future, timeout)

    async def wait_push(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for message in self.pushes[seen:]:
                if match(message):
                    return message
            seen = len(self.pushes)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching push in {timeout}s; got {self.pushes[-5:]}")
            self.pushed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.pushed.wait(), left)

    async def close(self) -> None:
        await self.socket.close()
        with contextlib.suppress(BaseException):
            await self._reader
