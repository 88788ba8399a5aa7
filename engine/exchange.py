"""The engine facade the web node and workers call: no caller sees keys or Lua.

``place_order`` is the two-phase order flow of DESIGN.md §3: hold on the account
shard, then place on the market shard; the settler applies the resulting events.
Private ``orders`` pushes are published on ``hftx:u:<user>`` right after each call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import orjson
from redis.exceptions import RedisError, ResponseError

from engine import accounts, addresses, registry
from engine import market as M
from engine.ids import new_order_id
from engine.pubsub import publish_many
from engine.pushes import order_pushes
from engine.settlement import balance_push
from engine.types import (
    Asset,
    Balance,
    BookSnapshot,
    EngineError,
    Fill,
    Market,
    Order,
    OrderRejected,
    OrderRequest,
    PlaceResult,
)
from engine.units import format_price, format_size, notional

log = logging.getLogger("hftx.exchange")

MARKET_CACHE_S = 1.0
T = TypeVar("T")
PLACED_MEMORY = 50_000  # resting orders placed here whose market a cancel knows at once
BOOK_LEVELS_FOR_ESTIMATE = 1000
# a concurrent request with the same client_order_id holds before it places: how long a
# duplicate waits for that order to reach its market, so that the 409 can carry it
DUPLICATE_WAIT_S = 1.0
ORDER_ID_ATTEMPTS = 3  # new ids tried when the engine finds an id already taken


def user_channel(user_id: str) -> str:
    return f"hftx:u:{user_id}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


TRADE_PAGE = 200  # stream entries per read of :meth:`Exchange.scan_trades`


@dataclass(frozen=True, slots=True)
class TradeScan:
    trades: list[dict[str, Any]]
    cut: str | None  # the oldest entry read, when the read stopped at its bound


class Exchange:
    """One per process; safe to share between tasks."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._markets: dict[str, Market] = {}
        self._markets_at = 0.0
        self._loading: asyncio.Future[None] | None = None
        self._placed: dict[str, tuple[str, str]] = {}  # order id -> (user, market)
        # each item: the pushes of one market call, or one ready (channel, message)
        self._outbox: asyncio.Queue[
            tuple[Market, list[dict[str, Any]], dict[str, Order]] | tuple[str, bytes]
        ] = asyncio.Queue()
        self._scales: dict[str, int] = {}
        self._publisher: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, redis: Any) -> Exchange:
        from engine.functions import ensure_loaded

        await ensure_loaded(redis)
        return cls(redis)

    async def close(self) -> None:
        """Wait for pushes still being published."""
        await self.flush()

    async def flush(self) -> None:
        """Wait until every push queued so far is published."""
        while self._publisher is not None and not self._publisher.done():
            await asyncio.gather(self._publisher, return_exceptions=True)

    # -- registry ------------------------------------------------------------------

    async def assets(self) -> list[Asset]:
        return [Asset(s, scale) for s, scale in sorted((await registry.assets(self.redis)).items())]

    async def create_asset(self, symbol: str, scale: int) -> Asset:
        return await registry.create_asset(self.redis, symbol, scale)

    async def markets(self) -> list[Market]:
        await self._refresh_markets(force=True)
        return list(self._markets.values())

    async def market(self, market_id: str, fresh: bool = False) -> Market:
        """The market from this node's copy of the registry (at most MARKET_CACHE_S
        old; ``fresh``: reread now, for an answer that shows it to a client)."""
        await self._refresh_markets(force=fresh)
        market = self._markets.get(market_id)
        if market is None:
            await self._refresh_markets(force=True)
            market = self._markets.get(market_id)
        if market is None:
            raise EngineError("UNKNOWN_MARKET", f"unknown market {market_id}")
        return market

    async def _refresh_markets(self, force: bool = False) -> None:
        """Reload the registry when the copy is older than MARKET_CACHE_S; concurrent
        callers share one reload (``force``: a reload started by this call)."""
        if not force and time.monotonic() - self._markets_at < MARKET_CACHE_S:
            return
        loading = self._loading
        if force or loading is None or loading.done():
            loading = self._loading = asyncio.ensure_future(self._load_markets())
        await asyncio.shield(loading)

    async def _load_markets(self) -> None:
        started = time.monotonic()
        markets = {m.id: m for m in await registry.markets(self.redis)}
        if started >= self._markets_at:  # a reload that started later may have landed
            self._markets, self._markets_at = markets, started

    async def create_market(self, market: Market, keep_status: bool = False) -> Market:
        """Create ``market`` or reconfigure it (fees, min size, max notional); with
        ``keep_status`` an existing market keeps its status (a new one is TRADING)."""
        await registry.create_market(self.redis, market, now_ms(), keep_status)
        await self._refresh_markets(force=True)
        return await self.market(market.id)

    async def set_market_status(self, market_id: str, status: str) -> Market:
        await self.market(market_id)
        await M.set_status(self.redis, market_id, status, now_ms())
        await self._refresh_markets(force=True)
        return await self.market(market_id)

    # -- orders --------------------------------------------------------------------

    async def place_order(self, user_id: str, req: OrderRequest) -> PlaceResult:
        """Hold the funds, then place; never waits for PostgreSQL."""
        market = await self.market(req.market)
        if market.status != "TRADING":
            # the copy may be up to MARKET_CACHE_S old: a market reopened a moment ago
            # (on any node) is not refused with the status it had (the engine decides)
            await self._refresh_markets(force=True)
            market = await self.market(req.market)
            if market.status != "TRADING":
                raise EngineError("MARKET_NOT_TRADING", f"market is {market.status}")
        req = await self._with_budget(user_id, market, req)
        for _ in range(ORDER_ID_ATTEMPTS):
            try:
                return await self._hold_and_place(user_id, market, req)
            except EngineError as exc:
                if exc.code != "ORDER_ID_TAKEN":
                    raise
                # the id was generated twice (two processes with one node id): the
                # hold is released, nothing was placed; try again with a new id
                log.warning("place refused (%s): retrying with a new order id", exc)
        raise EngineError("INTERNAL", "no free order id")

    async def _hold_and_place(self, user_id: str, market: Market, req: OrderRequest) -> PlaceResult:
        """The two phases of a place under a new order id: hold, then place."""
        asset, amount = hold_of(market, req)
        if req.side == "buy" and amount > accounts.MAX_AMOUNT:
            # above every market's max_notional (at most MAX_AMOUNT): say so, as the
            # engine would, rather than the hold's "amount too large"
            what = "order notional" if req.type == "limit" else "quote_amount"
            raise EngineError("INVALID_PARAM", f"{what} above max notional")
        order_id = new_order_id()
        now = now_ms()
        held = await accounts.hold(
            self.redis, user_id, order_id, market.id, asset, amount,
            client_order_id=req.client_order_id, now=now,
        )  # fmt: skip
        if held.kind == "duplicate" and held.existing is not None:
            existing = await self._placed_order(held.existing[0], held.existing[1])
            if existing is None:
                raise EngineError("DUPLICATE_CLIENT_ORDER_ID", "client_order_id already used")
            return PlaceResult(order=existing, duplicate=True)
        if held.kind == "new" and held.balance is not None:
            # queued before the place's own pushes; the settler's push after the fills
            # needs a stream read and an account call first, so it normally comes later
            await self._push_balance(user_id, held.balance)
        # Once the place is sent the engine acts whatever happens to this caller (a
        # request timeout, a closed socket): finish the call and its pushes regardless.
        return await _unless_cancelled(self._place_held(user_id, market, req, order_id, now))

    async def _placed_order(self, market_id: str, order_id: str) -> Order | None:
        """The order a duplicate ``client_order_id`` names, once its place has landed
        (at most :data:`DUPLICATE_WAIT_S`; None if it never does)."""
        deadline = time.monotonic() + DUPLICATE_WAIT_S
        delay = 0.001
        while True:
            existing = await M.get_order(self.redis, market_id, order_id)
            if existing is not None or time.monotonic() >= deadline:
                return existing
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _place_held(
        self, user_id: str, market: Market, req: OrderRequest, order_id: str, now: int
    ) -> PlaceResult:
        """The second phase of :meth:`place_order`: place, then pushes and the answer."""
        asset = hold_of(market, req)[0]
        try:
            outcome = await M.place(self.redis, order_id, user_id, req, now)
        except EngineError:
            await self._release(user_id, order_id, asset)
            raise
        except (ResponseError, OSError):
            # outcome unknown: the hold stays; the reconciler settles it either way
            raise
        if outcome.kind == "duplicate":
            await self._release(user_id, order_id, asset)
            existing = await M.get_order(self.redis, market.id, outcome.order_id)
            assert existing is not None
            return PlaceResult(order=existing, duplicate=True)
        order = Order(
            id=order_id,
            user_id=user_id,
            market=market.id,
            side=req.side,
            type=req.type,
            # as the engine stores it: a market order is IOC unless it is FOK
            time_in_force="IOC"
            if req.type == "market" and req.time_in_force == "GTC"
            else req.time_in_force,
            post_only=req.post_only,
            price=req.price,
            amount=req.amount,
            filled=outcome.filled,
            cost=outcome.cost,
            status=outcome.status,  # type: ignore[arg-type]
            created_ts=now,
            updated_ts=now,
            client_order_id=req.client_order_id,
            quote_amount=req.quote_amount,
        )
        self._publish(market, outcome.events, {order_id: order})
        if order.status == "NEW" or order.status == "PARTIALLY_FILLED":
            self._remember(order)
        if order.status == "REJECTED":
            raise OrderRejected(
                "POST_ONLY_WOULD_TAKE", "post-only order would take liquidity", order
            )
        return PlaceResult(order=order, fills=taker_fills(market, order, outcome.events))

    def _remember(self, order: Order) -> None:
        """Note the user and market of an order resting after its place (bounded)."""
        placed = self._placed
        if len(placed) >= PLACED_MEMORY:
            del placed[next(iter(placed))]  # the oldest
        placed[order.id] = (order.user_id, order.market)

    async def _with_budget(self, user_id: str, market: Market, req: OrderRequest) -> OrderRequest:
        """A market buy by base amount gets a quote budget from the current asks."""
        if req.type != "market" or req.side != "buy" or req.quote_amount or not req.amount:
            return req
        book = await M.depth(self.redis, market.id, BOOK_LEVELS_FOR_ESTIMATE)
        left, cost = req.amount, 0
        for price, size in book.asks:
            take = min(left, size)
            cost += notional(market, price, take)
            left -= take
            if not left:
                break
        # 5% price protection; without asks the smallest budget (one unit): the order
        # is placed and expires unfilled (NO_LIQUIDITY), as a market sell does
        budget = cost + cost // 20 + 1
        if budget > market.max_notional:
            # capped by max_notional: the copy may be up to MARKET_CACHE_S old (a limit
            # raised a moment ago on any node must not cut the order): reread it once
            market = await self.market(market.id, fresh=True)
            budget = min(budget, market.max_notional)
        available = (await accounts.balance(self.redis, user_id, market.quote)).available
        if available < max(cost, 1):
            raise EngineError("INSUFFICIENT_FUNDS", f"not enough {market.quote}")
        return replace(req, quote_amount=min(budget, available))

    async def cancel_order(
        self, user_id: str, order_id: str | None = None, client_order_id: str | None = None
    ) -> Order:
        placed = self._placed.get(order_id) if order_id else None
        if placed is not None and placed[0] == user_id:
            # placed here: its market is known without reading the hold (the engine
            # checks that the order is open and the user's)
            market_id, oid = placed[1], str(order_id)
        else:
            placed = None
            market_id, oid = await self._locate_open(user_id, order_id, client_order_id)
        market = await self.market(market_id)
        return await _unless_cancelled(self._cancel_located(user_id, market, oid, placed))

    async def _cancel_located(
        self, user_id: str, market: Market, oid: str, placed: tuple[str, str] | None
    ) -> Order:
        market_id = market.id
        try:
            outcome, order = await M.cancel_and_read(self.redis, market_id, oid, user_id, now_ms())
        except EngineError:
            if placed is not None:  # the answer the hold lookup would have given
                self._placed.pop(oid, None)
                await self._locate_open(user_id, oid, None)
            raise
        assert order is not None
        self._placed.pop(oid, None)
        self._publish(market, outcome.events, {oid: order})
        return order

    async def _locate_open(
        self, user_id: str, order_id: str | None, client_order_id: str | None
    ) -> tuple[str, str]:
        if order_id:
            hold = await accounts.hold_record(self.redis, user_id, order_id)
            if hold is not None and hold.market:
                return hold.market, order_id
        elif client_order_id:
            found = await accounts.client_order(self.redis, user_id, client_order_id)
            if found is not None:
                return found
        else:
            raise EngineError("INVALID_PARAM", "order_id or client_order_id is required")
        raise EngineError("UNKNOWN_ORDER", "unknown order")

    async def locate_open(
        self, user_id: str, order_id: str | None = None, client_order_id: str | None = None
    ) -> tuple[Market, str]:
        """The market and id of ``user_id``'s open order (by id or client order id);
        UNKNOWN_ORDER if there is none."""
        market_id, oid = await self._locate_open(user_id, order_id, client_order_id)
        return await self.market(market_id), oid

    async def amend_order(self, user_id: str, market: Market, order_id: str, amount: int) -> Order:
        """Reduce an open order to ``amount`` base units (below its amount, above what it
        filled), keeping its place in the queue; the settler releases the freed hold."""
        return await _unless_cancelled(self._amend(user_id, market, order_id, amount))

    async def _amend(self, user_id: str, market: Market, order_id: str, amount: int) -> Order:
        outcome, order = await M.reduce_and_read(
            self.redis, market.id, order_id, user_id, amount, now_ms()
        )
        assert order is not None
        self._publish(market, outcome.events, {order_id: order})
        return order

    async def cancel_all(self, user_id: str, market: str | None = None) -> list[Order]:
        by_market: dict[str, list[str]] = {}
        for hold in await accounts.holds(self.redis, user_id):
            if hold.market and (market is None or hold.market == market):
                by_market.setdefault(hold.market, []).append(hold.order_id)
        if market is not None:
            await self.market(market)
        canceled: list[Order] = []
        for market_id, ids in by_market.items():
            try:
                canceled += await self.cancel_orders(user_id, market_id, ids)
            except EngineError as exc:  # a halted market's orders stay; the others' still go
                if market is not None or exc.code != "MARKET_NOT_TRADING":
                    raise
        return canceled

    async def cancel_orders(
        self, user_id: str, market_id: str, order_ids: list[str]
    ) -> list[Order]:
        """Cancel those of ``order_ids`` (in ``market_id``) that are open and the user's;
        the canceled orders. Ids of other orders are skipped, not refused."""
        m = await self.market(market_id)
        events, done = await M.cancel_many(self.redis, market_id, user_id, order_ids, now_ms())
        orders = await self._orders(market_id, done)
        self._publish(m, events, {o.id: o for o in orders})
        return orders

    async def open_orders(self, user_id: str, market: str | None = None) -> list[Order]:
        by_market: dict[str, list[str]] = {}
        for hold in await accounts.holds(self.redis, user_id):
            if hold.market and (market is None or hold.market == market):
                by_market.setdefault(hold.market, []).append(hold.order_id)
        out: list[Order] = []
        for market_id, ids in by_market.items():
            out += [
                o
                for o in await self._orders(market_id, ids)
                if o.user_id == user_id and o.status in ("NEW", "PARTIALLY_FILLED")
            ]
        return sorted(out, key=lambda o: (o.created_ts, o.id))

    async def get_order(self, user_id: str, order_id: str) -> Order:
        """The order if it is ``user_id``'s (else UNKNOWN_ORDER, like a missing one)."""
        if not isinstance(order_id, str) or not order_id.isdigit() or len(order_id) > 20:
            raise EngineError("UNKNOWN_ORDER", "unknown order")
        hold = await accounts.hold_record(self.redis, user_id, order_id)
        if hold is not None and hold.market:
            order = await M.get_order(self.redis, hold.market, order_id)
            if order is not None and order.user_id == user_id:
                return order
        # an order that holds nothing (finished) names no market: look in every one, in
        # one round trip (ids are unique across markets)
        markets = await registry.market_ids(self.redis)
        for order in (await self._orders_at([(m, order_id) for m in markets])).values():
            if order.user_id == user_id:
                return order
        raise EngineError("UNKNOWN_ORDER", "unknown order")

    async def get_order_by_client_id(self, user_id: str, client_order_id: str) -> Order:
        """The user's order with that client order id (placed in the last 24 h)."""
        found = await accounts.client_order(self.redis, user_id, client_order_id)
        if found is not None:
            order = await M.get_order(self.redis, found[0], found[1])
            if order is not None and order.user_id == user_id:
                return order
        raise EngineError("UNKNOWN_ORDER", "unknown order")

    async def live_orders(
        self, user_id: str, wanted: list[tuple[str, str]]
    ) -> dict[tuple[str, str], Order]:
        """The live state of the ``(market, order id)`` pairs that are ``user_id``'s and
        still in Redis (one round trip)."""
        found = await self._orders_at(wanted)
        return {key: o for key, o in found.items() if o.user_id == user_id}

    async def _orders(self, market_id: str, order_ids: list[str]) -> list[Order]:
        pipe = self.redis.pipeline(transaction=False)
        for oid in order_ids:
            pipe.hgetall(f"{{m:{market_id}}}:o:{oid}")
        out = []
        for raw in await pipe.execute():
            if raw:
                rec = {k.decode(): v.decode() for k, v in raw.items()}
                order = M.order_from_record(market_id, rec)
                if order is not None:
                    out.append(order)
        return out

    async def book(self, market_id: str, depth: int) -> BookSnapshot:
        await self.market(market_id)
        return await M.depth(self.redis, market_id, depth)

    async def recent_trades(self, market_id: str, limit: int) -> list[dict[str, Any]]:
        """The latest trades (newest first) in the market stream, wire format: the
        whole stream is read if need be (see :meth:`scan_trades` for a bounded read)."""
        return (await self.scan_trades(market_id, limit)).trades

    async def scan_trades(
        self,
        market_id: str,
        limit: int,
        *,
        max_entries: int | None = None,
        before: str | None = None,
    ) -> TradeScan:
        """The latest trades (newest first, at most ``limit``) in the market stream,
        wire format, read backwards from the entry before ``before`` (default: the
        newest) until ``limit`` trades are found or the stream's start, or ``max_entries``
        entries were read: then ``cut`` is the oldest entry read (the stream holds every
        engine call of minutes, most of them orders that trade nothing)."""
        market = await self.market(market_id)
        stream = f"{{m:{market_id}}}:ev"
        trades: list[dict[str, Any]] = []
        last_id = "+" if before is None else "(" + before
        read = 0
        while len(trades) < limit:
            if max_entries is not None and read >= max_entries:
                return TradeScan(trades, last_id[1:])
            count = TRADE_PAGE if max_entries is None else min(TRADE_PAGE, max_entries - read)
            entries = await self.redis.xrevrange(stream, max=last_id, count=count)
            read += len(entries)
            for entry_id, fields in entries:
                for ev in reversed(orjson.loads(fields[b"e"])):
                    if ev["e"] == "trade":
                        trades.append(trade_to_wire(market, ev))
                last_id = "(" + entry_id.decode()
            if len(entries) < count:
                break
        return TradeScan(trades[:limit], None)

    # -- accounts ------------------------------------------------------------------

    async def balances(self, user_id: str) -> list[Balance]:
        return await accounts.balances(self.redis, user_id)

    async def addresses(self, user_id: str) -> list[tuple[str, str]]:
        out = []
        for asset in await self.assets():
            out.append(
                (asset.symbol, await addresses.deposit_address(self.redis, user_id, asset.symbol))
            )
        return out

    async def deposit(self, deposit_id: str, address: str, asset: str, amount: int) -> Any:
        return await accounts.deposit(self.redis, deposit_id, address, asset, amount)

    async def request_withdrawal(
        self, user_id: str, withdrawal_id: str, asset: str, amount: int, address: str
    ) -> Any:
        return await accounts.request_withdrawal(
            self.redis, user_id, withdrawal_id, asset, amount, address
        )

    async def complete_withdrawal(self, withdrawal_id: str) -> Any:
        return await accounts.complete_withdrawal(self.redis, withdrawal_id)

    async def reject_withdrawal(self, withdrawal_id: str) -> Any:
        return await accounts.reject_withdrawal(self.redis, withdrawal_id)

    async def withdrawals(self, user_id: str) -> list[Any]:
        return await accounts.withdrawals(self.redis, user_id)

    async def transfer(
        self, user_id: str, transfer_id: str, asset: str, amount: int, to_address: str
    ) -> Any:
        return await accounts.transfer(self.redis, user_id, transfer_id, asset, amount, to_address)

    # -- pushes --------------------------------------------------------------------

    async def _release(self, user_id: str, order_id: str, asset: str) -> None:
        """Abort the hold of an order the market refused; push the balance it restores."""
        await accounts.release(self.redis, user_id, order_id)
        await self._push_balance(user_id, await accounts.balance(self.redis, user_id, asset))

    async def _push_balance(self, user_id: str, balance: Balance) -> None:
        """Queue a private ``balances`` push (published in order with the order pushes)."""
        scale = self._scales.get(balance.asset)
        if scale is None:
            self._scales = await registry.assets(self.redis)
            scale = self._scales.get(balance.asset, 0)
        self._enqueue((user_channel(user_id), orjson.dumps(balance_push(balance, scale))))

    def _publish(
        self, market: Market, events: list[dict[str, Any]], known: dict[str, Order]
    ) -> None:
        """Queue the pushes of one call; one task publishes them in call order.
        The orders these events end (makers filled, orders canceled) leave
        :meth:`_remember`'s table (else it kept every filled one up to its cap)."""
        if events:
            placed = self._placed
            for ev in events:
                if ev["e"] == "done":
                    placed.pop(ev["id"], None)
            self._enqueue((market, events, known))

    def _enqueue(
        self, item: tuple[Market, list[dict[str, Any]], dict[str, Order]] | tuple[str, bytes]
    ) -> None:
        self._outbox.put_nowait(item)
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.create_task(self._publish_loop())

    async def _publish_loop(self) -> None:
        while not self._outbox.empty():
            batch = [self._outbox.get_nowait() for _ in range(min(self._outbox.qsize(), 256))]
            try:
                await self._publish_batch(batch)
            except (RedisError, OSError) as exc:  # best effort: the next batches still go
                log.warning("%d pushes not published: redis unavailable (%r)", len(batch), exc)

    async def _publish_batch(self, batch: list[Any]) -> None:
        """Publish the pushes of the queued calls and balance changes, in order."""
        calls = [item for item in batch if len(item) == 3]
        pushes = iter(await self._pushes(calls)) if calls else None
        messages = []
        for item in batch:
            if len(item) == 2:
                messages.append(item)
                continue
            assert pushes is not None
            for user, push in next(pushes):
                messages.append((user_channel(user), orjson.dumps(push)))
        await publish_many(self.redis, messages)

    async def _pushes(
        self, calls: list[tuple[Market, list[dict[str, Any]], dict[str, Order]]]
    ) -> list[list[tuple[str, dict[str, Any]]]]:
        """The pushes of each call. The other orders the calls' events mention (makers,
        orders done) are read in one round trip, after all the calls, for their fixed
        fields; their fills and state come from each call's events."""
        wanted: dict[tuple[str, str], None] = {}
        for market, events, known in calls:
            for ev in events:
                kind = ev["e"]
                oid = ev["maker"] if kind == "trade" else ev["id"] if kind == "done" else None
                if oid is not None and oid not in known:
                    wanted[(market.id, oid)] = None
        latest = await self._orders_at(list(wanted)) if wanted else {}
        out: list[list[tuple[str, dict[str, Any]]]] = []
        for market, events, known in calls:
            final = dict(known)
            for oid in _touched(events) if latest else ():
                order = latest.get((market.id, oid))
                if order is not None and oid not in final:
                    final[oid] = order
            out.append(order_pushes(market, events, final))
        return out

    async def _orders_at(self, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], Order]:
        pipe = self.redis.pipeline(transaction=False)
        for market_id, oid in wanted:
            pipe.hgetall(f"{{m:{market_id}}}:o:{oid}")
        out: dict[tuple[str, str], Order] = {}
        for (market_id, oid), raw in zip(wanted, await pipe.execute(), strict=True):
            if raw:
                rec = {k.decode(): v.decode() for k, v in raw.items()}
                order = M.order_from_record(market_id, rec)
                if order is not None:
                    out[(market_id, oid)] = order
        return out


def _touched(events: list[dict[str, Any]]) -> list[str]:
    """The ids of the orders the events change."""
    out: list[str] = []
    for ev in events:
        kind = ev["e"]
        if kind == "trade":
            out += (ev["maker"], ev["taker"])
        elif kind == "done" or kind == "accepted":
            out.append(ev["id"])
    return list(dict.fromkeys(out))


async def _unless_cancelled(call: Coroutine[Any, Any, T]) -> T:
    """Await ``call`` in a task of its own that a cancelled caller does not cancel."""
    task = asyncio.ensure_future(call)
    task.add_done_callback(_retrieve)
    return await asyncio.shield(task)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark the outcome of a task nobody may await any more as seen (no warning)."""
    if not task.cancelled():
        task.exception()


def hold_of(market: Market, req: OrderRequest) -> tuple[str, int]:
    """The asset and amount an order reserves before it reaches the market."""
    if req.side == "sell":
        return market.base, req.amount
    if req.type == "market":
        return market.quote, req.quote_amount
    return market.quote, notional(market, req.price, req.amount)


def taker_fills(market: Market, order: Order, events: list[dict[str, Any]]) -> list[Fill]:
    fee_asset = market.base if order.side == "buy" else market.quote
    return [
        Fill(
            trade_id=ev["tid"],
            price=ev["price"],
            size=ev["size"],
            quote=ev["quote"],
            fee=ev["tfee"],
            fee_asset=fee_asset,
            maker_order_id=ev["maker"],
            liquidity="taker",
        )
        for ev in events
        if ev["e"] == "trade" and ev["taker"] == order.id
    ]


def trade_to_wire(market: Market, ev: dict[str, Any]) -> dict[str, Any]:
    return {
        "trade_id": ev["tid"],
        "price": format_price(market, ev["price"]),
        "size": format_size(market, ev["size"]),
        "taker_side": ev["side"],
        "maker_order_id": ev["maker"],
        "taker_order_id": ev["taker"],
        "seq": ev["seq"],
        "ts": ev["ts"],
    }
