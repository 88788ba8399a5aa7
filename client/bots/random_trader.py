"""Random trader: small market and limit orders at a bounded rate.

``await run_random_trader(client, "BTC-USD")`` with a logged-in client, or
``python -m client.bots.random_trader --url ... --market BTC-USD``.

The reference is the mid of the book (``GET /markets/{id}/book``), else the last
trade, else ``reference``. Resting limit orders are capped at ``max_open``: the
oldest are cancelled first. It sends only orders its free balances pay for (flipping
the side, or cancelling its oldest resting order to free funds). Everything it left
open is cancelled on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
import uuid

from client.amounts import to_fraction
from client.bots.flow import FlowParams, funded, random_order
from client.bots.quotes import reference_from_book
from client.codec import Json
from client.errors import HftxError
from client.exchange import HftxClient
from client.markets import MarketSpec
from client.ratelimit import RateLimiter
from client.session import add_connection_args, configure_logging, open_client, run_program

log = logging.getLogger(__name__)


async def run_random_trader(
    client: HftxClient,
    market: str,
    *,
    orders_per_second: float = 1.0,
    params: FlowParams | None = None,
    max_open: int = 10,
    reference: str | None = None,
    stp: str = "cancel_oldest",
    tag: str = "rt",
    stop: asyncio.Event | None = None,
    rng: random.Random | None = None,
) -> None:
    """Trade randomly on ``market`` until ``stop`` is set or the task is cancelled.

    ``stp`` defaults to ``cancel_oldest`` so that an order reaching the trader's own
    resting orders cancels those and keeps matching against everyone else. Settings
    that cannot work are ``INVALID_PARAM`` before anything is sent.
    """
    params = params or FlowParams()
    stop = stop or asyncio.Event()
    rng = rng or random.Random()
    try:  # bad settings: INVALID_PARAM, as the exchange would refuse such orders
        params.check()
        limiter = RateLimiter(orders_per_second)
        if max_open < 0:
            raise ValueError("max_open must be >= 0")
        if reference is not None and to_fraction(reference) <= 0:
            raise ValueError(f"reference {reference} must be positive")
    except ValueError as exc:
        raise HftxError("INVALID_PARAM", str(exc), 400) from None
    spec = MarketSpec.from_market(await client.fetch_market(market))
    prefix = f"{tag}-"
    out_of_funds = False
    try:
        while not stop.is_set():
            await limiter.acquire()
            # Jitter so that several traders do not fire in step.
            await asyncio.sleep(rng.uniform(0, 0.5 / orders_per_second))
            try:
                ref = await _reference_ticks(client, spec, reference)
                if ref is None:
                    log.info("no reference price for %s yet", market)
                    continue
                free = {
                    asset: to_fraction(row["free"])
                    for asset, row in (await client.fetch_balance()).items()
                }
                intent = funded(random_order(rng, spec, ref, params), spec, ref, free)
                if intent is None:  # its resting orders may hold what it has: free some
                    resting = len(await _own_open_orders(client, market, prefix))
                    await _trim_open_orders(client, market, prefix, resting - 1, limiter)
                    if not resting and not out_of_funds:
                        log.warning("not enough %s or %s to trade: waiting", spec.base,
                                    spec.quote)  # fmt: skip
                    out_of_funds = not resting
                    continue
                out_of_funds = False
                order = await client.create_order(
                    market, intent.side, intent.type, intent.amount, intent.price,
                    client_order_id=prefix + uuid.uuid4().hex[:24], stp=stp,
                )  # fmt: skip
                log.info(
                    "%s %s %s @ %s -> %s filled %s",
                    intent.type, intent.side, intent.amount, intent.price or "market",
                    order.get("status"), order.get("filled"),
                )  # fmt: skip
                await _trim_open_orders(client, market, prefix, max_open, limiter)
            except HftxError as exc:
                log.warning("order failed: %s", exc)
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await _trim_open_orders(client, market, prefix, 0, None)


async def _reference_ticks(
    client: HftxClient, spec: MarketSpec, reference: str | None
) -> int | None:
    book = await client.fetch_order_book(spec.id, depth=1)
    bids, asks = book.get("bids") or [], book.get("asks") or []
    ref = reference_from_book(bids[0][0] if bids else None, asks[0][0] if asks else None)
    if ref is None:
        last = (await client.fetch_ticker(spec.id)).get("last") or reference
        ref = to_fraction(last) if last else None
    return None if ref is None else max(1, spec.price.steps(ref, "down"))


async def _own_open_orders(client: HftxClient, market: str, prefix: str) -> list[Json]:
    """This bot's resting orders, oldest first."""
    own = [
        order
        for order in await client.fetch_open_orders(market)
        if str(order.get("client_order_id") or "").startswith(prefix)
    ]
    own.sort(key=lambda order: (order.get("created_ts") or 0, str(order["id"])))
    return own


async def _trim_open_orders(
    client: HftxClient, market: str, prefix: str, keep: int, limiter: RateLimiter | None
) -> None:
    """Cancel this bot's oldest resting orders beyond ``keep``."""
    own = await _own_open_orders(client, market, prefix)
    for order in own[: max(0, len(own) - keep)]:
        if limiter is not None:
            await limiter.acquire()
        try:
            await client.cancel_order(str(order["id"]))
        except HftxError as exc:
            log.debug("cancel %s: %s", order["id"], exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m client.bots.random_trader", description=__doc__.split("\n\n")[0]
    )
    add_connection_args(parser)
    parser.add_argument("--market", required=True, type=str.upper, help="market id, e.g. BTC-USD")
    parser.add_argument(
        "--rate", type=float, default=1.0, help="max orders per second (default %(default)s)"
    )
    parser.add_argument(
        "--max-size-multiple", type=int, default=5, help="x market min size (default %(default)s)"
    )
    parser.add_argument(
        "--market-pct", type=int, default=30, help="%% of market orders (default %(default)s)"
    )
    parser.add_argument(
        "--max-offset-ticks", type=int, default=20, help="limit price range (default %(default)s)"
    )
    parser.add_argument(
        "--max-open", type=int, default=10, help="resting orders kept (default %(default)s)"
    )
    parser.add_argument("--reference", help="price to use while the book is empty")
    parser.add_argument("--tag", default="rt", help="client_order_id prefix (default %(default)s)")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    params = FlowParams(
        max_size_multiple=args.max_size_multiple,
        market_pct=args.market_pct,
        max_offset_ticks=args.max_offset_ticks,
    )

    async def run() -> None:
        client = await open_client(args)
        async with client:
            await run_random_trader(
                client, args.market, orders_per_second=args.rate, params=params,
                max_open=args.max_open, reference=args.reference, tag=args.tag,
                rng=random.Random(args.seed),
            )  # fmt: skip

    return run_program(run)


if __name__ == "__main__":
    sys.exit(main())
