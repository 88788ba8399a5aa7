"""``HftxClient``: the exchange API in one object.

HTTP methods use ccxt-like names (``fetch_*``, ``create_order``, ...). The WebSocket
is opened by :meth:`HftxClient.connect`; over it go the ``ws_*`` request methods and
the ``subscribe_*`` channels, which are restored automatically after a reconnect.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from client.amounts import Amount
from client.backoff import Backoff
from client.codec import Json
from client.errors import HftxError
from client.http import HttpApi
from client.orders import order_params, wire_amount
from client.subscriptions import (
    BookSubscription,
    Callback,
    Key,
    Subscription,
    push_key,
)
from client.ws import WsConnection, ws_url

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:9001"
TOKEN_REFRESH_MARGIN = 30.0  # seconds before expiry at which the WS logs in again


def _as_list(result: Any, key: str) -> list[Json]:
    """Accept both a bare JSON list and an object wrapping it under ``key``."""
    if isinstance(result, dict):
        result = result.get(key, [])
    return list(result or [])


def _by_asset(result: Any) -> dict[str, Json]:
    return {row["asset"]: row for row in _as_list(result, "balances")}


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(part, safe="") for part in parts)


def _order_ref(order_id: str | None, client_order_id: str | None) -> dict[str, str]:
    if order_id is not None and client_order_id is None:
        return {"order_id": order_id}
    if client_order_id is not None and order_id is None:
        return {"client_order_id": client_order_id}
    raise HftxError("INVALID_PARAM", "give order_id or client_order_id", 400)


class HftxClient:
    """Async client for one hftx exchange.

    ```python
    async with HftxClient("http://127.0.0.1:9001") as ex:
        await ex.login("me@example.com", "secret")
        await ex.create_order("BTC-USD", "buy", "limit", "0.01", "30000.00")
        await ex.connect()
        book = await ex.subscribe_book("BTC-USD")
        async for _ in book:
            print(book.book.best_bid(), book.book.best_ask())
    ```

    ``timeout`` bounds each HTTP request and WebSocket request; ``ws_endpoint``
    overrides the WebSocket URL (default: ``base_url`` with ``ws``/``wss`` and ``/ws``);
    ``backoff`` shapes reconnect delays; ``heartbeats`` asks for the ``heartbeat``
    channel of every market subscribed to (recorded in :attr:`heartbeats`).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: float = 10.0,
        ws_endpoint: str | None = None,
        backoff: Backoff | None = None,
        heartbeats: bool = True,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = HttpApi(self.base_url, timeout=timeout, transport=http_transport)
        self.ws = WsConnection(
            ws_endpoint or ws_url(self.base_url),
            on_push=self._on_push,
            token_provider=self._ws_token,
            on_open=self._resubscribe_all,
            request_timeout=timeout,
            backoff=backoff,
        )
        self.heartbeats: dict[str, Json] = {}
        """Last ``heartbeat`` push per market (``seq``, ``last_trade_id``, ``ts``)."""
        self._want_heartbeats = heartbeats
        self._heartbeat_markets: set[str] = set()
        self._subs: dict[Key, Subscription] = {}
        self._cancel_on_disconnect = False
        self._backoff = backoff
        self._credentials: tuple[str, str] | None = None
        self._token_expiry: float | None = None
        self._refresher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """End all subscriptions and close both transports."""
        for sub in list(self._subs.values()):
            sub.end()
        self._subs.clear()
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        await self.ws.close()
        await self.http.aclose()

    # --- authentication -----------------------------------------------------------

    @property
    def token(self) -> str | None:
        """The current access token (``None`` before :meth:`login`)."""
        return self.http.token

    async def signup(self, email: str, password: str) -> Json:
        """Create an account; returns ``{user_id}``."""
        result: Json = await self.http.post(
            "/auth/signup", {"email": email, "password": password}, private=False
        )
        return result

    async def login(self, email: str, password: str) -> Json:
        """Log in and keep the token (and the credentials, to log in again when the
        token expires). An open WebSocket is authenticated with the new token."""
        result: Json = await self.http.post(
            "/auth/login", {"email": email, "password": password}, private=False
        )
        self.http.token = result["access_token"]
        self._credentials = (email, password)
        expires_in = result.get("expires_in")
        self._token_expiry = time.monotonic() + int(expires_in) if expires_in else None
        if self.ws.connected:
            await self.ws.request("auth", {"token": self.http.token})
            if self._refresher is None:
                self._refresher = asyncio.create_task(self._refresh_token())
        return result

    async def _relogin(self) -> bool:
        if self._credentials is None:
            return False
        await self.login(*self._credentials)
        return True

    async def _private(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run a private HTTP call, logging in again once if the token was refused."""
        try:
            return await call()
        except HftxError as exc:
            if exc.status != 401 or not await self._relogin():
                raise
        return await call()

    async def _get(self, path: str, **params: Any) -> Any:
        return await self._private(lambda: self.http.get(path, private=True, **params))

    async def _post(self, path: str, body: Json) -> Any:
        return await self._private(lambda: self.http.post(path, body))

    async def _delete(self, path: str, **params: Any) -> Any:
        return await self._private(lambda: self.http.delete(path, **params))

    # --- public market data (HTTP) ------------------------------------------------

    async def fetch_time(self) -> Json:
        """The server's clock: ``{ts}`` in ms since the epoch."""
        result: Json = await self.http.get("/time")
        return result

    async def fetch_markets(self) -> list[Json]:
        """Markets with ``id``, ``base``, ``quote``, ``price_increment``,
        ``size_increment``, ``min_size``, ``max_notional``, ``status``
        (TRADING|HALT|CANCEL_ONLY), ``maker_fee_bps``, ``taker_fee_bps``."""
        return _as_list(await self.http.get("/markets"), "markets")

    async def fetch_market(self, market: str) -> Json:
        """One market of :meth:`fetch_markets`; ``UNKNOWN_MARKET`` if none has that id."""
        for row in await self.fetch_markets():
            if row.get("id") == market:
                return row
        raise HftxError("UNKNOWN_MARKET", f"no market {market!r}", 400)

    async def fetch_order_book(self, market: str, depth: int | None = None) -> Json:
        """``{market, seq, bids, asks, checksum, ts}``: levels ``[price, size]`` best
        first, ``depth`` (1..1000) per side, 50 when not given."""
        result: Json = await self.http.get(_path("markets", market, "book"), depth=depth)
        return result

    async def fetch_trades(self, market: str, limit: int | None = None) -> list[Json]:
        """The market's latest trades, newest first (``limit`` 1..1000, default 50)."""
        return _as_list(
            await self.http.get(_path("markets", market, "trades"), limit=limit), "trades"
        )

    async def fetch_ticker(self, market: str) -> Json:
        """Best bid and ask with sizes, ``last``, 24 h volume, open, high and low
        (``null`` when unknown), ``seq``, ``ts``."""
        result: Json = await self.http.get(_path("markets", market, "ticker"))
        return result

    async def fetch_candles(
        self,
        market: str,
        interval: str = "1m",
        limit: int | None = None,
        *,
        start: int | None = None,
        end: int | None = None,
    ) -> list[Json]:
        """OHLCV candles, oldest first; ``start`` / ``end`` in ms since the epoch (with
        ``start``: the first ``limit`` from it, else the last ``limit`` before ``end``)."""
        path = _path("markets", market, "candles")
        answer = await self.http.get(path, interval=interval, limit=limit, start=start, end=end)
        return _as_list(answer, "candles")

    # --- account (HTTP) -----------------------------------------------------------

    async def fetch_balance(self) -> dict[str, Json]:
        """Balances by asset: ``{asset: {asset, free, locked, total}}``."""
        return _by_asset(await self._get("/balances"))

    async def fetch_open_orders(self, market: str | None = None) -> list[Json]:
        """Own open orders (of ``market``, or all), oldest first."""
        return _as_list(await self._get("/orders", status="open", market=market), "orders")

    async def fetch_order(self, order_id: str, market: str | None = None) -> Json:
        """One own order by id, open or finished (``UNKNOWN_ORDER`` if it is not yours).
        ``market`` (ccxt's ``symbol``) is accepted and not needed: ids are unique across
        markets."""
        result: Json = await self._get(_path("orders", order_id))
        return result

    async def fetch_order_by_client_id(self, client_order_id: str) -> Json:
        """The order placed with ``client_order_id`` in the last 24 h: how to learn the
        outcome of a place that answered 5xx before retrying it."""
        result: Json = await self._get(_path("orders", "client:" + client_order_id))
        return result

    async def fetch_my_trades(
        self, market: str | None = None, limit: int | None = None
    ) -> list[Json]:
        """Own fills (``GET /fills``), newest first."""
        return _as_list(await self._get("/fills", market=market, limit=limit), "fills")

    async def iter_my_trades(
        self, market: str | None = None, page_size: int = 500
    ) -> AsyncIterator[Json]:
        """Every own fill, newest first, page by page (``cursor`` / ``X-Next-Cursor``)."""
        async for fill in self._pages("/fills", market=market, limit=page_size):
            yield fill

    async def iter_closed_orders(
        self, market: str | None = None, page_size: int = 500
    ) -> AsyncIterator[Json]:
        """Every finished order, newest first, page by page."""
        pages = self._pages("/orders", status="closed", market=market, limit=page_size)
        async for order in pages:
            yield order

    async def _pages(self, path: str, **params: Any) -> AsyncIterator[Json]:
        cursor: str | None = None
        while True:
            page = functools.partial(self.http.get_page, path, **params, cursor=cursor)
            items, cursor = await self._private(page)
            for item in _as_list(items, path):
                yield item
            if cursor is None:
                return

    async def create_order(
        self,
        market: str,
        side: str,
        type: str,
        amount: Amount | None = None,
        price: Amount | None = None,
        *,
        time_in_force: str | None = None,
        post_only: bool = False,
        client_order_id: str | None = None,
        stp: str | None = None,
        quote_amount: Amount | None = None,
    ) -> Json:
        """Place an order (``POST /orders``); returns the order object with its ``fills``.

        ``side`` and ``type`` may also come in ccxt's order
        (``create_order("BTC-USD", "limit", "buy", ...)``). ``type`` ``limit`` needs
        ``price``, ``market`` takes none; ``amount`` is the base size, or a market buy
        gives ``quote_amount`` (the quote to spend) instead.
        ``time_in_force`` GTC (default; a market order is IOC), IOC or FOK;
        ``post_only`` (limit GTC) is refused ``POST_ONLY_WOULD_TAKE`` if it would match
        (``err.result``: the order, recorded REJECTED);
        ``client_order_id`` (``[A-Za-z0-9._:-]{1,36}``, unique per user for 24 h) makes a
        retry safe: a second place with it is ``DUPLICATE_CLIENT_ORDER_ID`` carrying the
        first order in ``err.result``; ``stp`` (self-trade prevention) is
        ``cancel_newest`` (default), ``cancel_oldest`` or ``cancel_both``. What the
        exchange would refuse anyway (a limit without price, a bad id) is
        ``INVALID_PARAM`` before anything is sent; a float amount is a TypeError.
        """
        params = order_params(
            market, side, type, amount, price,
            time_in_force=time_in_force, post_only=post_only,
            client_order_id=client_order_id, stp=stp, quote_amount=quote_amount,
        )  # fmt: skip
        result: Json = await self._post("/orders", params)
        return result

    async def cancel_order(self, order_id: str, market: str | None = None) -> Json:
        """Cancel an open order; returns it ``CANCELED``. A finished order answers
        ``UNKNOWN_ORDER``, as one that does not exist (:meth:`fetch_order` tells its
        end state). ``market`` (ccxt's ``symbol``) is accepted and not needed."""
        result: Json = await self._delete(_path("orders", order_id))
        return result

    async def amend_order(
        self, order_id: str | None, amount: Amount, *, client_order_id: str | None = None
    ) -> Json:
        """Reduce an open order to ``amount`` (its new total size, below the current one
        and above what it filled); it keeps its place in the queue (``PATCH /orders``)."""
        ref = _order_ref(order_id, client_order_id)
        path = _path("orders", ref.get("order_id") or "client:" + ref["client_order_id"])
        body = {"amount": wire_amount(amount, "amount")}
        result: Json = await self._private(lambda: self.http.patch(path, body))
        return result

    async def cancel_all_orders(self, market: str | None = None) -> Any:
        """Cancel every open order (of ``market``); returns the canceled orders. Without
        ``market`` the orders of a halted market stay; naming one is
        ``MARKET_NOT_TRADING``."""
        return await self._delete("/orders", market=market)

    # --- wallets (HTTP) -----------------------------------------------------------

    async def fetch_deposit_addresses(self) -> list[Json]:
        """``[{asset, address}]``: one stable deposit address per asset."""
        return _as_list(await self._get("/addresses"), "addresses")

    async def transfer(
        self, asset: str, amount: Amount, to_address: str, *, transfer_id: str | None = None
    ) -> Json:
        """Instant internal transfer to another user's address.

        Idempotent by ``transfer_id``: pass your own to retry safely after an error
        whose outcome is unknown (one is generated otherwise).
        """
        body = {
            "transfer_id": transfer_id or uuid.uuid4().hex,
            "asset": asset,
            "amount": wire_amount(amount, "amount"),
            "to_address": to_address,
        }
        result: Json = await self._post("/transfers", body)
        return result

    async def withdraw(
        self, asset: str, amount: Amount, address: str, *, withdrawal_id: str | None = None
    ) -> Json:
        """Request a withdrawal; idempotent by ``withdrawal_id`` (generated if omitted)."""
        body = {
            "withdrawal_id": withdrawal_id or uuid.uuid4().hex,
            "asset": asset,
            "amount": wire_amount(amount, "amount"),
            "address": address,
        }
        result: Json = await self._post("/withdrawals", body)
        return result

    async def fetch_withdrawals(self) -> list[Json]:
        """Own withdrawals, oldest first: ``{withdrawal_id, asset, amount, address,
        status, ts}``, ``status`` PENDING|COMPLETED|REJECTED."""
        return _as_list(await self._get("/withdrawals"), "withdrawals")

    # --- WebSocket requests -------------------------------------------------------

    async def connect(self) -> None:
        """Open the WebSocket (authenticated if logged in). Idempotent."""
        await self.ws.start()
        if self._refresher is None and self._credentials is not None:
            self._refresher = asyncio.create_task(self._refresh_token())

    async def _refresh_token(self) -> None:
        """Log in again shortly before the token expires and re-authenticate the open
        socket with the new token, so that subscriptions are not interrupted."""
        while self._token_expiry is not None:
            await asyncio.sleep(
                max(1.0, self._token_expiry - TOKEN_REFRESH_MARGIN - time.monotonic())
            )
            try:
                await self._relogin()  # which authenticates the open socket again
            except HftxError as exc:
                log.warning("hftx: token refresh failed: %s", exc)
                await asyncio.sleep(5)

    @property
    def connected(self) -> bool:
        """True while the WebSocket is open (and authenticated if logged in)."""
        return self.ws.connected

    async def ws_request(
        self, method: str, params: Json | None = None, *, timeout: float | None = None
    ) -> Any:
        """Any WebSocket method (``area.verb``); returns its ``result``.

        Opens the WebSocket on first use (a request never sent is not an outcome
        unknown ``UNAVAILABLE``)."""
        if not self.ws.started:
            await self.connect()
        return await self.ws.request(method, params, timeout=timeout)

    async def ws_ping(self) -> Any:
        """``ping``: ``{ts}``, the server's clock."""
        return await self.ws_request("ping")

    async def ws_create_order(
        self,
        market: str,
        side: str,
        type: str,
        amount: Amount | None = None,
        price: Amount | None = None,
        *,
        time_in_force: str | None = None,
        post_only: bool = False,
        client_order_id: str | None = None,
        stp: str | None = None,
        quote_amount: Amount | None = None,
    ) -> Json:
        """:meth:`create_order` over the WebSocket (``order.place``)."""
        params = order_params(
            market, side, type, amount, price,
            time_in_force=time_in_force, post_only=post_only,
            client_order_id=client_order_id, stp=stp, quote_amount=quote_amount,
        )  # fmt: skip
        result: Json = await self.ws_request("order.place", params)
        return result

    async def ws_cancel_order(
        self, order_id: str | None = None, *, client_order_id: str | None = None
    ) -> Json:
        """Cancel by ``order_id`` or ``client_order_id`` (``order.cancel``)."""
        result: Json = await self.ws_request("order.cancel", _order_ref(order_id, client_order_id))
        return result

    async def ws_amend_order(
        self, order_id: str | None, amount: Amount, *, client_order_id: str | None = None
    ) -> Json:
        """:meth:`amend_order` over the WebSocket (``order.amend``)."""
        params = {**_order_ref(order_id, client_order_id), "amount": wire_amount(amount, "amount")}
        result: Json = await self.ws_request("order.amend", params)
        return result

    async def ws_cancel_on_disconnect(self, enabled: bool = True) -> Json:
        """Have the orders this socket places canceled when it closes (a dropped link
        included): ``session.cancel_on_disconnect``. Orders placed over HTTP stay."""
        result: Json = await self.ws_request("session.cancel_on_disconnect", {"enabled": enabled})
        self._cancel_on_disconnect = enabled  # asked again of every new socket
        return result

    async def ws_cancel_all_orders(self, market: str | None = None) -> Any:
        """:meth:`cancel_all_orders` over the WebSocket (``order.cancel_all``)."""
        return await self.ws_request("order.cancel_all", {"market": market} if market else {})

    async def ws_fetch_open_orders(self, market: str | None = None) -> list[Json]:
        """:meth:`fetch_open_orders` over the WebSocket (``orders.open``)."""
        result = await self.ws_request("orders.open", {"market": market} if market else {})
        return _as_list(result, "orders")

    async def ws_fetch_balance(self) -> dict[str, Json]:
        """:meth:`fetch_balance` over the WebSocket (``balances.get``)."""
        return _by_asset(await self.ws_request("balances.get"))

    # --- subscriptions --------------------------------------------------------------

    async def subscribe_book(
        self, market: str, depth: int = 50, *, callback: Callback | None = None
    ) -> BookSubscription:
        """Subscribe to ``book``; ``sub.book`` is a :class:`LocalBook` kept in sync
        (resubscribing on gap or checksum mismatch). Delivers applied pushes."""
        sub = BookSubscription(self, market, depth, callback=callback, backoff=self._backoff)
        await self._subscribe(sub)
        return sub

    async def subscribe_trades(
        self, market: str, *, callback: Callback | None = None
    ) -> Subscription:
        """Public trades of ``market``, one push per trade, in trade order."""
        return await self._subscribe(Subscription(self, "trades", market, callback=callback))

    async def subscribe_ticker(
        self, market: str, *, callback: Callback | None = None
    ) -> Subscription:
        """Ticker of ``market``: the current one first, then on changes (at most every
        100 ms)."""
        return await self._subscribe(Subscription(self, "ticker", market, callback=callback))

    async def subscribe_orders(self, *, callback: Callback | None = None) -> Subscription:
        """Private order updates (``exec_type`` NEW|TRADE|CANCELED|EXPIRED|REJECTED, and
        REPLACED after an amend)."""
        return await self._subscribe(Subscription(self, "orders", callback=callback))

    async def subscribe_balances(self, *, callback: Callback | None = None) -> Subscription:
        """Private balance pushes ``{asset, free, locked, total}``: new totals after
        each change."""
        return await self._subscribe(Subscription(self, "balances", callback=callback))

    async def subscribe_notifications(self, *, callback: Callback | None = None) -> Subscription:
        """Private notifications (P2P trade moves and messages)."""
        return await self._subscribe(Subscription(self, "notifications", callback=callback))

    async def _subscribe(self, sub: Subscription) -> Subscription:
        if sub.key in self._subs:
            sub.end()
            raise ValueError(f"already subscribed to {sub.channel} {sub.market or ''}".rstrip())
        await self.connect()
        self._subs[sub.key] = sub
        try:
            await self.ws_request("subscribe", sub.params)
        except HftxError as exc:
            if exc.code != "UNAVAILABLE":  # otherwise: subscribed again on reconnect
                del self._subs[sub.key]
                sub.end()
                raise
        market = sub.market
        if self._want_heartbeats and market is not None and market not in self._heartbeat_markets:
            self._heartbeat_markets.add(market)
            await self._subscribe_heartbeats([market])
        return sub

    async def _subscribe_heartbeats(self, markets: list[str]) -> None:
        """Ask for ``heartbeat`` pushes of the markets we follow (best effort)."""
        try:
            await self.ws_request("subscribe", {"channel": "heartbeat", "markets": markets})
        except HftxError as exc:
            log.debug("heartbeat subscription for %s: %s", markets, exc)

    async def resubscribe(self, sub: Subscription) -> None:
        """Subscribe again to get a fresh snapshot (used by book resyncs)."""
        try:
            await self.ws_request("unsubscribe", sub.params)
        except HftxError as exc:
            if exc.code == "UNAVAILABLE":
                raise
        await self.ws_request("subscribe", sub.params)

    async def unsubscribe(self, sub: Subscription) -> None:
        """End ``sub`` (what ``sub.close()`` does) and unsubscribe on the server."""
        if self._subs.get(sub.key) is sub:
            del self._subs[sub.key]
        sub.end()
        if self.connected:
            try:
                await self.ws_request("unsubscribe", sub.params)
            except HftxError as exc:
                log.info("unsubscribe %s: %s", sub.params, exc)

    # --- connection callbacks --------------------------------------------------------

    def _on_push(self, push: Json) -> None:
        channel = push.get("channel")
        if channel == "heartbeat" and isinstance(push.get("market"), str):
            self.heartbeats[push["market"]] = push
        elif channel == "status":
            log.info("hftx: server status %s", push.get("type"))
        sub = self._subs.get(push_key(push))
        if sub is not None:
            sub.feed(push)

    async def _resubscribe_all(self) -> None:
        if self._cancel_on_disconnect:
            try:
                await self.ws_request("session.cancel_on_disconnect", {"enabled": True})
            except HftxError as exc:
                log.warning("hftx: cancel on disconnect not restored: %s", exc)
        subs = list(self._subs.values())
        for sub in subs:
            sub.reset()
        results = await asyncio.gather(
            *(self.ws_request("subscribe", sub.params) for sub in subs), return_exceptions=True
        )
        for sub, result in zip(subs, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("hftx: resubscribing %r failed: %s", sub, result)
        if self._heartbeat_markets:
            await self._subscribe_heartbeats(sorted(self._heartbeat_markets))

    async def _ws_token(self, refresh: bool) -> str | None:
        expiry = self._token_expiry
        expired = expiry is not None and time.monotonic() > expiry - TOKEN_REFRESH_MARGIN
        if refresh or expired:
            await self._relogin()
        return self.http.token
