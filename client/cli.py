"""Command line: ``python -m client [--url URL] [--email E --password P] COMMAND``.

Credentials also come from ``HFTX_EMAIL`` / ``HFTX_PASSWORD`` (and the URL from
``HFTX_URL``). Errors print as ``error: CODE (status): message`` with exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

from client.codec import Json
from client.errors import HftxError
from client.exchange import HftxClient
from client.session import add_connection_args, open_client
from client.tables import fields_line, fills_table, ladder, order_line, table

Command = Callable[[HftxClient, argparse.Namespace], Awaitable[None]]
PUBLIC = {"markets", "book", "signup"}


async def cmd_markets(client: HftxClient, args: argparse.Namespace) -> None:
    rows = [
        [m.get("id"), m.get("status"), m.get("price_increment"), m.get("size_increment"),
         m.get("min_size"), m.get("maker_fee_bps"), m.get("taker_fee_bps")]
        for m in await client.fetch_markets()
    ]  # fmt: skip
    print(table(["market", "status", "tick", "lot", "min size", "maker bps", "taker bps"], rows))


async def cmd_signup(client: HftxClient, args: argparse.Namespace) -> None:
    if not args.email or not args.password:
        raise HftxError("INVALID_PARAM", "signup needs --email and --password", 400)
    result = await client.signup(args.email, args.password)
    print(f"signed up {args.email}: user id {result.get('user_id')}")


async def cmd_place(client: HftxClient, args: argparse.Namespace) -> None:
    order_type = args.type or ("limit" if args.price is not None else "market")
    order = await client.create_order(
        args.market, args.side, order_type, args.amount, args.price,
        time_in_force=args.tif, post_only=args.post_only, client_order_id=args.client_order_id,
        stp=args.stp, quote_amount=args.quote_amount,
    )  # fmt: skip
    print(order_line(order))
    if order.get("fills"):
        print(fills_table(order["fills"]))


async def cmd_cancel(client: HftxClient, args: argparse.Namespace) -> None:
    if args.all:
        result = await client.cancel_all_orders(args.market)
        canceled = result if isinstance(result, list) else []
        print(f"canceled {len(canceled)} order(s){' on ' + args.market if args.market else ''}")
        for order in canceled:
            print(order_line(order))
    elif args.order_id:
        print(order_line(await _cancel_one(client, args.order_id)))
    else:
        raise HftxError("INVALID_PARAM", "give an ORDER_ID or --all", 400)


async def _cancel_one(client: HftxClient, order_id: str) -> Json:
    """Cancel ``order_id``, saying why when it is already done."""
    return await _open_only(client, order_id, "canceled", client.cancel_order(order_id))


async def _open_only(
    client: HftxClient, order_id: str, verb: str, request: Awaitable[Json]
) -> Json:
    """Run ``request`` on an open order. The exchange answers ``UNKNOWN_ORDER`` ("unknown
    order") for an order of yours that is already done, too: say so, with the same code."""
    try:
        return await request
    except HftxError as exc:
        if exc.code != "UNKNOWN_ORDER":
            raise
        try:
            order = await client.fetch_order(order_id)
        except HftxError:
            raise exc from None
        status = order.get("status")
        if status in ("NEW", "PARTIALLY_FILLED", None):
            raise exc from None
        raise HftxError(
            exc.code,
            f"order {order_id} is already {status}: only open orders can be {verb}",
            exc.status,
        ) from None


async def cmd_amend(client: HftxClient, args: argparse.Namespace) -> None:
    amend = client.amend_order(args.order_id, args.amount)
    print(order_line(await _open_only(client, args.order_id, "amended", amend)))


async def cmd_book(client: HftxClient, args: argparse.Namespace) -> None:
    if not args.watch:
        book = await client.fetch_order_book(args.market, depth=args.depth)
        bids = [(str(level[0]), str(level[1])) for level in book.get("bids") or []]
        asks = [(str(level[0]), str(level[1])) for level in book.get("asks") or []]
        print(ladder(bids, asks, f"{args.market} seq {book.get('seq')}"))
        return
    if not 1 <= args.depth <= 1000:  # as GET /book answers (a 0 drew an empty ladder)
        raise HftxError("INVALID_PARAM", "depth must be an integer 1..1000", 400)
    changed = asyncio.Event()

    async def on_book(push: Json) -> None:
        changed.set()

    sub = await client.subscribe_book(args.market, depth=max(args.depth, 10), callback=on_book)
    while True:
        await changed.wait()
        changed.clear()
        view = sub.book
        title = f"{args.market} seq {view.seq} checksum {view.checksum()} (Ctrl-C to stop)"
        print("\x1b[2J\x1b[H" + ladder(view.bids(args.depth), view.asks(args.depth), title))
        await asyncio.sleep(0.1)  # redraw at most ~10 times per second


async def cmd_balances(client: HftxClient, args: argparse.Namespace) -> None:
    balances = await client.fetch_balance()
    rows = [[b["asset"], b.get("free"), b.get("locked"), b.get("total")] for b in balances.values()]
    print(table(["asset", "free", "locked", "total"], rows, right=(1, 2, 3)))


async def cmd_address(client: HftxClient, args: argparse.Namespace) -> None:
    addresses = await client.fetch_deposit_addresses()
    rows = [
        [a.get("asset"), a.get("address")]
        for a in addresses
        if args.asset is None or a.get("asset") == args.asset
    ]
    if not rows and args.asset is not None:
        known = ", ".join(str(a.get("asset")) for a in addresses)
        raise HftxError("INVALID_PARAM", f"no asset {args.asset} (assets: {known})", 400)
    print(table(["asset", "deposit address"], rows))


async def cmd_transfer(client: HftxClient, args: argparse.Namespace) -> None:
    result = await client.transfer(args.asset, args.amount, args.to_address, transfer_id=args.id)
    what = f"{args.amount} {args.asset} to {args.to_address}"
    if result.get("replay"):  # this transfer id was used before: nothing moved now
        print(f"already transferred {what} (transfer id {result.get('transfer_id')}: replay)")
    else:
        print(f"transferred {what}")
    print(fields_line(result))


async def cmd_orders(client: HftxClient, args: argparse.Namespace) -> None:
    orders = await client.fetch_open_orders(args.market)
    rows = [
        [o.get("id"), o.get("market"), o.get("side"), o.get("type"), o.get("price"),
         o.get("amount"), o.get("filled"), o.get("status"), o.get("client_order_id")]
        for o in orders
    ]  # fmt: skip
    headers = ["id", "market", "side", "type", "price", "amount", "filled", "status", "client id"]
    print(table(headers, rows, right=(4, 5, 6)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m client",
        description="hftx command line. Every command but markets, book and signup logs"
        " in (--email/--password or HFTX_EMAIL/HFTX_PASSWORD). Errors print"
        " 'error: CODE (status): message' and exit with status 1.",
        epilog="python -m client COMMAND --help shows a command's arguments.",
    )
    add_connection_args(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Command, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    command("markets", cmd_markets, "list markets")
    command("signup", cmd_signup, "create an account with --email/--password")

    place = command("place", cmd_place, "place an order (limit if PRICE is given)")
    place.add_argument("side", choices=["buy", "sell"], help="buy or sell")
    place.add_argument("market", type=str.upper, help="e.g. BTC-USD")
    place.add_argument("amount", nargs="?", help="base size (omit with --quote-amount)")
    place.add_argument("price", nargs="?", help="limit price")
    place.add_argument(
        "--type", choices=["limit", "market"], help="default: limit with a PRICE, else market"
    )
    place.add_argument(
        "--tif", choices=["GTC", "IOC", "FOK"], help="time in force (default GTC; market: IOC)"
    )
    place.add_argument(
        "--post-only", action="store_true", help="refused (POST_ONLY_WOULD_TAKE) if it would match"
    )
    place.add_argument(
        "--client-order-id", help="your id for the order, [A-Za-z0-9._:-]{1,36}, unique for 24 h"
    )
    place.add_argument(
        "--stp",
        choices=["cancel_newest", "cancel_oldest", "cancel_both"],
        help="self-trade prevention (default cancel_newest)",
    )
    place.add_argument("--quote-amount", help="quote to spend (market buys)")

    cancel = command("cancel", cmd_cancel, "cancel an order, or all with --all")
    cancel.add_argument("order_id", nargs="?", help="the order's id (only open orders)")
    cancel.add_argument("--all", action="store_true", help="cancel all open orders")
    cancel.add_argument("--market", type=str.upper, help="with --all: only this market")

    amend = command("amend", cmd_amend, "reduce an open order in place (keeps its queue place)")
    amend.add_argument("order_id", help="the open order's id")
    amend.add_argument("amount", help="new total base size, below the current one")

    book = command("book", cmd_book, "show the order book")
    book.add_argument("market", type=str.upper, help="e.g. BTC-USD")
    book.add_argument("--depth", type=int, default=10, help="levels per side (default 10)")
    book.add_argument(
        "--watch", action="store_true", help="live over the WebSocket (needs a login)"
    )

    command("balances", cmd_balances, "show balances")

    address = command("address", cmd_address, "show deposit addresses")
    address.add_argument("asset", nargs="?", type=str.upper, help="only this asset, e.g. BTC")

    transfer = command("transfer", cmd_transfer, "send to another user's deposit address")
    transfer.add_argument("asset", type=str.upper, help="e.g. BTC")
    transfer.add_argument("amount", help="decimal string, e.g. 0.01")
    transfer.add_argument("to_address", help="the payee's deposit address (hftx1...)")
    transfer.add_argument("--id", help="transfer id (idempotency key; generated if omitted)")

    orders = command("orders", cmd_orders, "list open orders")
    orders.add_argument("--market", type=str.upper, help="only this market")
    return parser


async def run(args: argparse.Namespace) -> None:
    # The WebSocket wants an ``auth`` first, even for public channels.
    watch = getattr(args, "watch", False)
    if watch and not (args.email and args.password):
        raise HftxError(
            "UNAUTHORIZED", "book --watch streams over the WebSocket: give --email/--password", 401
        )
    client = await open_client(args, login=args.command not in PUBLIC or watch)
    async with client:
        await args.handler(client, args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        asyncio.run(run(args))
        sys.stdout.flush()  # a closed pipe (``| head``) fails here, not at exit
    except BrokenPipeError:
        # The reader went away: stop quietly, and keep Python's final flush of stdout
        # from printing "Exception ignored ... BrokenPipeError" (as the Python docs do).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except HftxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if isinstance(exc.result, dict) and "id" in exc.result:
            print(order_line(exc.result), file=sys.stderr)  # e.g. the existing order
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
