"""Market maker: quotes both sides around a reference price and re-quotes on fills.

``await run_market_maker(client, "BTC-USD")`` with a logged-in client, or
``python -m client.bots.market_maker --url ... --market BTC-USD``.

Each cycle it reads its base position (its own fills on its market since start: pushed
on the private ``orders`` channel, which arrive before balances settle, completed from
``GET /fills`` with the fills whose push was missed during a reconnect; deposits,
transfers and trades on other markets do not count), picks the
reference (the book's mid, or a configured price moved by a small random walk),
computes the wanted quotes (:mod:`client.bots.quotes`), then cancels and places the
difference as post-only limit orders tagged with a ``client_order_id`` prefix. A fill
on the private ``orders`` channel triggers an early cycle. Orders go out at most
``max_orders_per_second``; on exit its quotes are cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
import time
import uuid
from fractions import Fraction
from typing import Any

from client.amounts import fraction_str, to_fraction
from client.bots.quotes import (
    Quote,
    QuoteParams,
    build_quotes,
    plan_requote,
    random_walk,
    reference_from_book,
    requote_tolerance,
)
from client.codec import Json
from client.errors import HftxError
from client.exchange import HftxClient
from client.markets import MarketSpec
from client.ratelimit import RateLimiter
from client.session import add_connection_args, configure_logging, open_client, run_program
from client.subscriptions import BookSubscription

log = logging.getLogger(__name__)

QUIET_ERRORS = frozenset({"POST_ONLY_WOULD_TAKE", "UNKNOWN_ORDER"})
CROSSING_WARN_AFTER = 6
"""Post-only refusals in a row on one side before the bot warns that its quotes cross
the book (a fixed ``reference`` far from the market, e.g.)."""


async def run_market_maker(
    client: HftxClient,
    market: str,
    *,
    params: QuoteParams | None = None,
    reference: str | None = None,
    walk_ticks: int = 2,
    interval: float = 2.0,
    max_orders_per_second: float = 5.0,
    tag: str = "mm",
    stop: asyncio.Event | None = None,
    rng: random.Random | None = None,
    cancel_on_disconnect: bool = True,
) -> None:
    """Quote ``market`` until ``stop`` is set or the task is cancelled.

    ``reference`` None quotes around the mid of the live book; a price string quotes
    around it and moves it by up to ``walk_ticks`` ticks per cycle. ``tag`` prefixes
    the client order ids: open orders with that prefix are treated as this bot's
    quotes (also those left over from an earlier run). With ``cancel_on_disconnect``
    the exchange cancels the quotes if the bot's socket drops (the bot crashed, the
    link broke): no stale quotes outlive it; it re-quotes once it is back.
    """
    params = params or QuoteParams()
    stop = stop or asyncio.Event()
    rng = rng or random.Random()
    spec = MarketSpec.from_market(await client.fetch_market(market))
    try:  # bad settings: INVALID_PARAM, as the exchange would refuse such orders
        params.check(spec)
        limiter = RateLimiter(max_orders_per_second, burst=2)
        ref_ticks = None if reference is None else spec.price.steps(reference, "down")
        if ref_ticks is not None and ref_ticks < 1:
            raise ValueError(f"reference {reference} must be at least one tick")
        if interval <= 0:
            raise ValueError("interval must be positive")
    except ValueError as exc:
        raise HftxError("INVALID_PARAM", str(exc), 400) from None
    bot = _Quoter(client, spec, params, tag, limiter)

    await client.connect()
    if cancel_on_disconnect:
        await client.ws_cancel_on_disconnect()
    filled = asyncio.Event()
    position = Position(spec)

    async def on_order(push: Json) -> None:
        if push.get("market") == market and push.get("exec_type") in ("TRADE", "EXPIRED"):
            position.apply(push)
            filled.set()

    orders = await client.subscribe_orders(callback=on_order)
    book = None if reference is not None else await client.subscribe_book(market, depth=10)
    log.info("market maker on %s: %s", market, params)
    caught_up = -float("inf")
    try:
        while not stop.is_set():
            if time.monotonic() - caught_up >= interval:  # not on every fill: history waits
                with contextlib.suppress(HftxError):  # for the drain, pushes do not
                    await _catch_up(client, position)
                    caught_up = time.monotonic()
            try:  # an error (a 503 while Redis restarts, e.g.) skips this cycle only
                if ref_ticks is not None:
                    ref_ticks = random_walk(ref_ticks, walk_ticks, rng)
                    ref: Fraction | None = spec.price.step * ref_ticks
                else:
                    assert book is not None
                    ref = await _book_reference(client, book)
                await bot.requote(ref, position.base)
            except HftxError as exc:
                log.warning("requote failed: %s", exc)
            filled.clear()
            await _wait_any((filled, stop), interval)
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await bot.cancel_all()
        await orders.close()
        if book is not None:
            await book.close()


async def _book_reference(client: HftxClient, sub: BookSubscription) -> Fraction | None:
    """Mid of the live book, else the last trade price, else None."""
    with contextlib.suppress(TimeoutError):
        book = await sub.wait_ready(5)
        bid, ask = book.best_bid(), book.best_ask()
        ref = reference_from_book(bid[0] if bid else None, ask[0] if ask else None)
        if ref is not None:
            return ref
    last = (await client.fetch_ticker(sub.book.market)).get("last")
    return to_fraction(last) if last else None


async def _catch_up(client: HftxClient, position: Position) -> None:
    """Count the own fills of ``GET /fills`` whose push was missed (a reconnect, a full
    queue), reading pages back to what an earlier call had already checked."""
    if position.checked is None:  # the start: fills count from the market's last trade
        ticker = await client.fetch_ticker(position.spec.id)
        position.start(int(ticker.get("last_trade_id") or 0))
    assert position.checked is not None
    newest: int | None = None
    async for fill in client.iter_my_trades(position.spec.id, page_size=100):
        trade_id = int(fill["trade_id"])
        newest = trade_id if newest is None else newest
        if trade_id <= position.checked:
            break
        position.add_fill(fill)
    if newest is not None:
        position.checked = max(position.checked, newest)


async def _wait_any(events: tuple[asyncio.Event, ...], timeout: float) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class Position:
    """Base inventory: the own fills on the market since the bot started.

    A ``TRADE`` push arrives as the order matches, before the balances settle, so a
    re-quote it triggers already sees the fill. A buy adds its size less the fee
    charged in base; a sell subtracts its size (its fee is in quote). Fills whose push
    was missed (the WebSocket was down) are added from the fill history
    (:meth:`add_fill`) back to the market's last trade at the start (:meth:`start`);
    each trade id counts once. Only fills count: a deposit, a transfer or a trade on
    another market does not move the position.
    """

    remembered = 10_000
    """Trade ids kept to recognise a fill counted already (the newest ones)."""

    def __init__(self, spec: MarketSpec, after: int | None = None) -> None:
        self.spec = spec
        self.base = Fraction(0)
        self.after = after
        """Fills up to this trade id are from before the start (None: not known yet)."""
        self.checked = after
        """The fill history was read back to this trade id: older fills are counted."""
        self._counted: set[int] = set()

    def start(self, after: int) -> None:
        """Set the market's last trade id at the start (the fills pushed since count)."""
        self.after = after
        self.checked = after if self.checked is None else max(self.checked, after)

    def apply(self, push: Json) -> None:
        """Count a push of the ``orders`` channel if it is a fill on this market."""
        if push.get("exec_type") != "TRADE" or push.get("market") != self.spec.id:
            return
        side = (push.get("order") or {}).get("side")
        self._count(push["trade_id"], side, push["last_size"], push.get("fee"),
                    push.get("fee_asset"))  # fmt: skip

    def add_fill(self, fill: Json) -> None:
        """Count a row of ``GET /fills`` (``trade_id``, ``side``, ``size``, ``fee``, ...)
        unless its push was counted already."""
        if fill.get("market", self.spec.id) != self.spec.id:
            return
        self._count(fill["trade_id"], fill.get("side"), fill["size"], fill.get("fee"),
                    fill.get("fee_asset"))  # fmt: skip

    def _count(self, trade_id: Any, side: Any, size: str, fee: Any, fee_asset: Any) -> None:
        tid = int(trade_id)
        if (self.after is not None and tid <= self.after) or tid in self._counted:
            return
        self._counted.add(tid)
        if len(self._counted) > self.remembered:
            self._counted = set(sorted(self._counted)[self.remembered // 2 :])
        if side == "sell":
            self.base -= to_fraction(size)
            return
        self.base += to_fraction(size)
        if fee_asset == self.spec.base and fee:
            self.base -= to_fraction(fee)


class _Quoter:
    """The I/O half of the market maker: reads state, cancels and places orders."""

    def __init__(
        self,
        client: HftxClient,
        spec: MarketSpec,
        params: QuoteParams,
        tag: str,
        limiter: RateLimiter,
    ) -> None:
        self.client = client
        self.spec = spec
        self.params = params
        self.prefix = f"{tag}-"
        self.limiter = limiter
        self.refused = {"buy": 0, "sell": 0}  # post-only refusals in a row per side

    async def own_orders(self) -> list[Json]:
        return [
            order
            for order in await self.client.fetch_open_orders(self.spec.id)
            if str(order.get("client_order_id") or "").startswith(self.prefix)
        ]

    async def requote(self, reference: Fraction | None, position: Fraction) -> None:
        desired: list[Quote] = []
        tolerance = Fraction(0)
        if reference is None:
            log.info("no reference price for %s yet: not quoting", self.spec.id)
        else:
            desired = build_quotes(self.spec, self.params, reference, position)
            tolerance = requote_tolerance(reference, self.params)
        to_cancel, to_place = plan_requote(await self.own_orders(), desired, tolerance)
        if to_cancel or to_place:
            shown = "-" if reference is None else self.spec.price.align(reference)
            placed = [f"{q.side} {q.size}@{q.price}" for q in to_place]
            log.info(
                "%s ref %s position %s: cancel %d, place %s",
                self.spec.id, shown, fraction_str(position), len(to_cancel), placed,
            )  # fmt: skip
        for order_id in to_cancel:
            await self._cancel(order_id)
        for quote in to_place:
            await self._place(quote)

    async def cancel_all(self) -> None:
        for order in await self.own_orders():
            await self._cancel(str(order["id"]))

    async def _cancel(self, order_id: str) -> None:
        await self.limiter.acquire()
        try:
            if self.client.connected:
                await self.client.ws_cancel_order(order_id)
            else:
                await self.client.cancel_order(order_id)
        except HftxError as exc:
            _log_error("cancel", order_id, exc)

    async def _place(self, quote: Quote) -> None:
        await self.limiter.acquire()
        create = self.client.ws_create_order if self.client.connected else self.client.create_order
        try:
            await create(
                self.spec.id, quote.side, "limit", quote.size, quote.price,
                time_in_force="GTC", post_only=True,
                client_order_id=self.prefix + uuid.uuid4().hex[:24],
            )  # fmt: skip
        except HftxError as exc:
            _log_error("place", f"{quote.side} {quote.size} @ {quote.price}", exc)
            if exc.code == "POST_ONLY_WOULD_TAKE":
                self._refused(quote)
        else:
            self.refused[quote.side] = 0

    def _refused(self, quote: Quote) -> None:
        """Count a post-only refusal; warn once per run of them that it lasts: alone,
        one is a race with the book, but a side refused again and again is not quoted
        at all, and the refusals are logged at DEBUG only."""
        self.refused[quote.side] += 1
        if self.refused[quote.side] == CROSSING_WARN_AFTER:
            log.warning(
                "%s: %d %s quotes in a row refused as POST_ONLY_WOULD_TAKE (last %s): the"
                " reference price is through the book, so that side is not quoted; give a"
                " --reference near the market or none (the book's mid)",
                self.spec.id, CROSSING_WARN_AFTER, quote.side, quote.price,
            )  # fmt: skip


def _log_error(action: str, what: str, exc: HftxError) -> None:
    level = logging.DEBUG if exc.code in QUIET_ERRORS else logging.WARNING
    log.log(level, "%s %s: %s", action, what, exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m client.bots.market_maker", description=__doc__.split("\n\n")[0]
    )
    add_connection_args(parser)
    parser.add_argument("--market", required=True, type=str.upper, help="market id, e.g. BTC-USD")
    parser.add_argument(
        "--levels", type=int, default=3, help="levels per side (default %(default)s)"
    )
    parser.add_argument(
        "--spread-bps", type=int, default=10, help="first level distance (default %(default)s)"
    )
    parser.add_argument(
        "--step-bps", type=int, default=10, help="extra distance per level (default %(default)s)"
    )
    parser.add_argument("--size", default="0.01", help="base size per level (default %(default)s)")
    parser.add_argument(
        "--max-inventory", default="1", help="|base position| limit (default %(default)s)"
    )
    parser.add_argument(
        "--requote-bps", type=int, default=2, help="keep quotes this close (default %(default)s)"
    )
    parser.add_argument("--reference", help="fixed reference price (default: book mid)")
    parser.add_argument(
        "--walk-ticks", type=int, default=2, help="random walk per cycle (default %(default)s)"
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between cycles (default %(default)s)"
    )
    parser.add_argument(
        "--rate", type=float, default=5.0, help="max orders per second (default %(default)s)"
    )
    parser.add_argument("--tag", default="mm", help="client_order_id prefix (default %(default)s)")
    parser.add_argument(
        "--keep-quotes-on-disconnect",
        action="store_true",
        help="leave the quotes on the book if the connection drops (default: the exchange "
        "cancels them)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    params = QuoteParams(
        levels=args.levels,
        spread_bps=args.spread_bps,
        step_bps=args.step_bps,
        size=args.size,
        max_inventory=args.max_inventory,
        requote_bps=args.requote_bps,
    )

    async def run() -> None:
        client = await open_client(args)
        async with client:
            await run_market_maker(
                client, args.market, params=params, reference=args.reference,
                walk_ticks=args.walk_ticks, interval=args.interval,
                max_orders_per_second=args.rate, tag=args.tag,
                cancel_on_disconnect=not args.keep_quotes_on_disconnect,
            )  # fmt: skip

    return run_program(run)


if __name__ == "__main__":
    sys.exit(main())
