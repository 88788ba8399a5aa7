"""WebSocket transport: one connection to ``/ws`` that stays up.

Requests are matched to responses by ``id``; pushes (messages without ``id``) go to
``on_push``. The connection authenticates first, then calls ``on_open`` (where the
caller resubscribes). If the link drops, it reconnects with backoff; if it goes
quiet, a ``ping`` request checks it is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from client.backoff import Backoff
from client.codec import Json, dumps, loads
from client.errors import HftxError, error_from_body

log = logging.getLogger(__name__)

TokenProvider = Callable[[bool], Awaitable[str | None]]
"""Returns the token to authenticate with (None: stay anonymous). The argument is
True when the previous token was refused, so a fresh one should be obtained."""

CLOSE_AUTH = 4401
CLOSE_SLOW_CONSUMER = 4408
CLOSE_FLOODING = 4429
CLOSE_RESTART = 1012


def ws_url(base_url: str) -> str:
    """``http://host:port`` → ``ws://host:port/ws`` (``https`` → ``wss``)."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", "", ""))


class WsConnection:
    """A self-healing WebSocket connection with request/response matching."""

    def __init__(
        self,
        url: str,
        *,
        on_push: Callable[[Json], None],
        token_provider: TokenProvider | None = None,
        on_open: Callable[[], Awaitable[None]] | None = None,
        request_timeout: float = 10.0,
        idle_ping: float = 5.0,
        backoff: Backoff | None = None,
        max_size: int = 2**22,
    ) -> None:
        self.url = url
        self.request_timeout = request_timeout
        self.idle_ping = idle_ping
        self.backoff = backoff or Backoff()
        self.close_code: int | None = None
        """Close code of the last connection that ended (None while none has)."""
        self._on_push = on_push
        self._token_provider = token_provider
        self._on_open = on_open
        self._max_size = max_size
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ws: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None
        self._closing = False
        self._last_rx = 0.0
        self._opened = 0

    @property
    def connected(self) -> bool:
        """True while the connection is open and authenticated."""
        return self._ready.is_set()

    @property
    def sessions(self) -> int:
        """Connections opened (and authenticated) so far: a change means a reconnect,
        across which pushes may have been missed."""
        return self._opened

    @property
    def started(self) -> bool:
        """True from :meth:`start` until :meth:`close` (connected or reconnecting)."""
        return self._runner is not None

    async def wait_connected(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self._ready.wait()

    async def start(self) -> None:
        """Connect and authenticate; raises if the first attempt fails."""
        if self._runner is not None:
            if self._first is not None and not self._first.done():
                await asyncio.shield(self._first)  # a concurrent start() is connecting
            return
        self._closing = False
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._first = first
        self._runner = asyncio.create_task(self._run(first), name=f"hftx-ws {self.url}")
        try:
            await first
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close for good (no reconnect)."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    async def request(
        self, method: str, params: Json | None = None, *, timeout: float | None = None
    ) -> Any:
        """Send a request and return its ``result``; raises :class:`HftxError`."""
        ws = self._ws
        if ws is None or not self._ready.is_set():
            raise HftxError("UNAVAILABLE", f"{method}: not connected", 503)
        return await self._call(ws, method, params, timeout)

    async def _call(
        self, ws: ClientConnection, method: str, params: Json | None, timeout: float | None
    ) -> Any:
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        timeout = self.request_timeout if timeout is None else timeout
        try:
            await ws.send(dumps({"id": request_id, "method": method, "params": params or {}}))
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise HftxError("TIMEOUT", f"{method}: no response in {timeout}s", 504) from None
        except ConnectionClosed:
            raise HftxError("UNAVAILABLE", f"{method}: connection lost", 503) from None
        finally:
            self._pending.pop(request_id, None)

    async def _run(self, first: asyncio.Future[None]) -> None:
        attempt = 0
        refresh = False
        while not self._closing:
            try:
                ws = await connect(
                    self.url, max_size=self._max_size, open_timeout=10, close_timeout=2
                )
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                if not first.done():
                    first.set_exception(HftxError("UNAVAILABLE", f"cannot connect: {exc}", 503))
                    return
                log.warning("hftx ws: cannot connect to %s: %s", self.url, exc)
            else:
                opened, refused = self._opened, False
                try:
                    await self._session(ws, refresh, first)
                except Exception as exc:
                    if not first.done():
                        first.set_exception(exc)
                        return
                    refused = isinstance(exc, HftxError) and exc.status == 401
                    if isinstance(exc, HftxError):
                        log.warning("hftx ws: session failed: %s", exc)
                    else:
                        log.exception("hftx ws: session failed")
                if self._opened > opened:
                    attempt = 0
                self.close_code = ws.close_code
                refresh = refused or self.close_code == CLOSE_AUTH
                if self._closing:
                    return
                log.info("hftx ws: disconnected (code %s), reconnecting", self.close_code)
            delay = self.backoff.delay(attempt)
            if self.close_code == CLOSE_FLOODING:
                delay = max(delay, self.backoff.cap / 2)
            attempt += 1
            await asyncio.sleep(delay)

    async def _session(
        self, ws: ClientConnection, refresh: bool, first: asyncio.Future[None]
    ) -> None:
        """Run one connection: authenticate, notify, then read until it closes."""
        self._ws = ws
        self._last_rx = asyncio.get_running_loop().time()
        reader = asyncio.create_task(self._read(ws))
        keepalive = asyncio.create_task(self._keepalive(ws))
        try:
            token = await self._token_provider(refresh) if self._token_provider else None
            if token is not None:
                await self._call(ws, "auth", {"token": token}, None)
            self._ready.set()
            self._opened += 1
            if not first.done():
                first.set_result(None)
            if self._on_open is not None:
                await self._on_open()
            await reader
        finally:
            self._ready.clear()
            self._ws = None
            keepalive.cancel()
            reader.cancel()
            await ws.close()
            self._fail_pending()

    async def _read(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionClosed):
            async for frame in ws:
                self._last_rx = loop.time()
                try:
                    message = loads(frame)
                except ValueError:
                    log.warning("hftx ws: undecodable frame %.200r", frame)
                    continue
                if isinstance(message, dict):
                    self._handle(message)

    def _handle(self, message: Json) -> None:
        if "id" in message and "status" in message:
            future = self._pending.get(message["id"])
            if future is None or future.done():
                return
            status = message["status"]
            if status == 200:
                future.set_result(message.get("result"))
            else:
                future.set_exception(error_from_body(int(status), message))
            return
        try:
            self._on_push(message)
        except Exception:
            log.exception("hftx ws: push handler failed on %.200r", message)

    async def _keepalive(self, ws: ClientConnection) -> None:
        """Ping when nothing was received for ``idle_ping`` seconds; drop a dead link."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.idle_ping)
            if loop.time() - self._last_rx < self.idle_ping:
                continue
            try:
                await self._call(ws, "ping", None, self.idle_ping)
            except HftxError as exc:
                if exc.code == "TIMEOUT":
                    log.warning("hftx ws: no answer to ping, reconnecting")
                    await ws.close()
                    return

    def _fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(HftxError("UNAVAILABLE", "connection lost", 503))
        self._pending.clear()
