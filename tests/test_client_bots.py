"""The example bots (client/bots) against a real exchange, each run for a few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import socket
import subprocess
import sys
from fractions import Fraction
from typing import Any

import pytest

from client import HftxClient, HftxError
from client.backoff import Backoff
from client.bots import market_maker, random_trader
from client.bots.flow import FlowParams, OrderIntent, funded
from client.bots.market_maker import Position, run_market_maker
from client.bots.quotes import QuoteParams
from client.bots.random_trader import run_random_trader
from client.markets import MarketSpec
from tests.test_e2e_support import (
    PASSWORD,
    ROOT,
    Exchange,
    LinkCutter,
    Trader,
    eventually,
    fund,
    new_market,
    new_user,
)

pytest_plugins = ["tests.test_e2e_support"]


async def book_levels(client: HftxClient, market: str) -> tuple[list[Any], list[Any]]:
    book = await client.fetch_order_book(market)
    return book["bids"], book["asks"]


async def stop_cleanly(stop: asyncio.Event, *tasks: asyncio.Task[None]) -> None:
    """Set ``stop``; every bot must end by itself, without an exception."""
    stop.set()
    async with asyncio.timeout(15):
        await asyncio.gather(*tasks)
    for task in tasks:
        assert task.done() and task.exception() is None


def assert_no_errors(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


async def test_market_maker_quotes_requotes_and_respects_inventory(
    exchange: Exchange, trader: Trader, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    market = await new_market(exchange)
    base = market.split("-")[0]
    mm = await trader("a", {base: "10", "USD": "10000"})
    taker = await trader("b", {"USD": "10000"})
    stop = asyncio.Event()
    params = QuoteParams(levels=2, spread_bps=10, step_bps=10, size="0.100",
                         max_inventory="0.25", requote_bps=1)  # fmt: skip
    bot = asyncio.create_task(
        run_market_maker(mm, market, params=params, reference="100.00", walk_ticks=0,
                         interval=5.0, max_orders_per_second=50, stop=stop)
    )  # cycles come from fills (the interval is longer than the test)  # fmt: skip
    try:

        async def quoted(bids: list[Any], asks: list[Any]) -> bool:
            return await book_levels(taker, market) == (bids, asks)

        full_bids = [["99.90", "0.100"], ["99.80", "0.100"]]
        await eventually(lambda: quoted(full_bids, [["100.10", "0.100"], ["100.20", "0.100"]]))
        quotes = await mm.fetch_open_orders(market)
        assert {o["post_only"] for o in quotes} == {True}
        assert all(o["client_order_id"].startswith("mm-") for o in quotes)
        first_ask = next(o["id"] for o in quotes if o["price"] == "100.10")

        second_ask = next(o["id"] for o in quotes if o["price"] == "100.20")
        hit = await taker.create_order(market, "buy", "market", "0.1")
        assert (hit["status"], hit["fills"][0]["maker_order_id"]) == ("FILLED", first_ask)

        async def requoted() -> list[dict[str, Any]]:
            asks = [o for o in await mm.fetch_open_orders(market) if o["side"] == "sell"]
            return asks if {o["id"] for o in asks} - {first_ask, second_ask} else []

        # Short 0.1, a second ask would allow -0.3 < -0.25: from the moment the fill
        # is re-quoted there is one ask, at the top (never the new one beside 100.20).
        asks = await eventually(requoted)
        assert [(o["price"], o["remaining"]) for o in asks] == [("100.10", "0.100")]
        assert await book_levels(taker, market) == (full_bids, [["100.10", "0.100"]])

        await taker.create_order(market, "buy", "market", "0.1")
        await eventually(lambda: quoted(full_bids, []))  # short 0.2: no ask fits
    finally:
        await stop_cleanly(stop, bot)
    assert await mm.fetch_open_orders(market) == []  # its quotes are cancelled on exit
    assert_no_errors(caplog)


async def test_market_maker_counts_fills_it_missed_while_disconnected(
    exchange: Exchange, trader: Trader
) -> None:
    """A quote fills while the bot's WebSocket is down (its TRADE push is lost): the
    bot takes the fill from its fill history and keeps within the inventory limit."""
    market = await new_market(exchange)
    base = market.split("-")[0]
    user = await new_user(exchange)
    await fund(exchange, user, {base: "10", "USD": "10000"})
    taker = await trader("b", {"USD": "10000"})
    port = int(exchange.url("a").rsplit(":", 1)[1])
    stop = asyncio.Event()
    params = QuoteParams(levels=1, spread_bps=10, size="0.100", max_inventory="0.15")
    async with (
        LinkCutter(port) as link,
        HftxClient(exchange.url("a"), ws_endpoint=f"ws://127.0.0.1:{link.port}/ws",
                   backoff=Backoff(base=0.05, cap=0.2)) as mm,
    ):  # fmt: skip
        await mm.login(user.email, PASSWORD)
        bot = asyncio.create_task(
            run_market_maker(mm, market, params=params, reference="100.00", walk_ticks=0,
                             interval=0.2, max_orders_per_second=50, stop=stop,
                             cancel_on_disconnect=False)  # its quotes stay while it is away
        )  # fmt: skip
        try:
            bid, ask = ["99.90", "0.100"], ["100.10", "0.100"]

            async def quoted(bids: list[Any], asks: list[Any]) -> bool:
                return await book_levels(taker, market) == (bids, asks)

            await eventually(lambda: quoted([bid], [ask]))
            link.cut(stay_down=True)
            await taker.create_order(market, "buy", "market", "0.1")
            await asyncio.sleep(0.5)  # cycles without the WebSocket
            link.up()
            await eventually(lambda: _connected(mm))
            # short 0.1: another ask could take it to -0.2, beyond 0.15; the fill
            # history shows the fill whose push was lost, and the ask goes for good
            await eventually(lambda: quoted([bid], []), timeout=10)
            await asyncio.sleep(1)
            assert await book_levels(taker, market) == ([bid], [])
        finally:
            await stop_cleanly(stop, bot)


async def test_market_maker_position_ignores_a_deposit(exchange: Exchange, trader: Trader) -> None:
    """The position is the bot's fills on its market: a deposit of the base asset leaves
    both sides quoted (it took the bid side away when the position followed the
    balance, as a transfer or a trade on another market did)."""
    market = await new_market(exchange)
    base = market.split("-")[0]
    user = await new_user(exchange)
    await fund(exchange, user, {base: "10", "USD": "10000"})
    stop = asyncio.Event()
    params = QuoteParams(levels=1, spread_bps=10, size="0.100", max_inventory="0.15")
    async with HftxClient(exchange.url("a"), backoff=Backoff(base=0.05, cap=0.2)) as mm:
        await mm.login(user.email, PASSWORD)
        bot = asyncio.create_task(
            run_market_maker(mm, market, params=params, reference="100.00", walk_ticks=0,
                             interval=0.2, max_orders_per_second=50, stop=stop)
        )  # fmt: skip
        try:
            both = (["99.90", "0.100"],), (["100.10", "0.100"],)

            async def quoted() -> bool:
                bids, asks = await book_levels(mm, market)
                return (tuple(bids), tuple(asks)) == both

            await eventually(quoted)
            await fund(exchange, user, {base: "5"})  # long 5 by the balance
            await asyncio.sleep(3)  # cycles, and more than the old 2 s grace
            assert await quoted()
        finally:
            await stop_cleanly(stop, bot)


async def _connected(client: HftxClient) -> bool:
    return client.connected


async def test_market_maker_quotes_around_the_book_mid(exchange: Exchange, trader: Trader) -> None:
    """Without a fixed reference the bot quotes inside the spread of the live book."""
    market = await new_market(exchange)
    base = market.split("-")[0]
    other = await trader("a", {base: "1", "USD": "1000"})
    mm = await trader("b", {base: "1", "USD": "1000"})
    await other.create_order(market, "buy", "limit", "0.5", "98")
    await other.create_order(market, "sell", "limit", "0.5", "102")
    stop = asyncio.Event()
    params = QuoteParams(levels=1, spread_bps=100, size="0.010")
    bot = asyncio.create_task(run_market_maker(mm, market, params=params, interval=0.2, stop=stop))
    try:

        async def inside() -> bool:
            bids, asks = await book_levels(other, market)
            return bids[0] == ["99.00", "0.010"] and asks[0] == ["101.00", "0.010"]

        await eventually(inside)
        await asyncio.sleep(0.5)  # its own quotes keep the mid where it was
        assert await inside()
    finally:
        await stop_cleanly(stop, bot)


async def test_random_trader_trades_against_the_market_maker(
    exchange: Exchange, trader: Trader, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    market = await new_market(exchange)
    base = market.split("-")[0]
    funds = {base: "100", "USD": "100000"}
    mm, rt = await trader("a", funds), await trader("b", funds)
    stop = asyncio.Event()
    params = QuoteParams(levels=3, spread_bps=5, step_bps=5, size="0.050", max_inventory="5")
    maker = asyncio.create_task(
        run_market_maker(mm, market, params=params, reference="100.00", walk_ticks=1,
                         interval=0.3, max_orders_per_second=50, stop=stop,
                         rng=random.Random(1))
    )  # fmt: skip
    flow = FlowParams(max_size_multiple=20, market_pct=50, max_offset_ticks=10, cross_pct=50)
    random_trader = asyncio.create_task(
        run_random_trader(rt, market, orders_per_second=20, params=flow, max_open=3,
                          stop=stop, rng=random.Random(2))
    )  # fmt: skip
    try:

        async def traded() -> bool:
            return len(await rt.fetch_trades(market, limit=100)) >= 5

        await eventually(traded, timeout=15)
    finally:
        random_trader.cancel()  # the other way to stop a bot
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(random_trader, 15)
        await stop_cleanly(stop, maker)
    assert await mm.fetch_open_orders(market) == [] and await rt.fetch_open_orders(market) == []

    async def fills() -> list[dict[str, Any]]:
        return await rt.fetch_my_trades(market)

    mine = await eventually(fills)
    maker_ids = {f["maker_order_id"] for f in mine if f["liquidity"] == "taker"}
    assert maker_ids, mine  # the trader took liquidity ...
    assert any(f["liquidity"] == "maker" for f in await mm.fetch_my_trades(market))  # from mm
    assert_no_errors(caplog)
    await mm.close()
    await rt.close()
    await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not left, left


async def test_random_trader_keeps_within_its_funds(
    exchange: Exchange, trader: Trader, caplog: pytest.LogCaptureFixture
) -> None:
    """A trader with little money sends only orders its free balances pay for (the
    other side, or after freeing what its resting orders hold), so the exchange
    refuses none, and it keeps trading."""
    caplog.set_level(logging.INFO)
    market = await new_market(exchange)
    base = market.split("-")[0]
    mm = await trader("a", {base: "100", "USD": "100000"})
    rt = await trader("b", {base: "0.010", "USD": "1.50"})  # a few orders' worth
    stop = asyncio.Event()
    params = QuoteParams(levels=3, spread_bps=5, step_bps=5, size="0.050", max_inventory="5")
    maker = asyncio.create_task(
        run_market_maker(mm, market, params=params, reference="100.00", walk_ticks=1,
                         interval=0.3, max_orders_per_second=50, stop=stop)
    )  # fmt: skip
    flow = FlowParams(max_size_multiple=8, market_pct=50, max_offset_ticks=10, cross_pct=50)
    poor = asyncio.create_task(
        run_random_trader(rt, market, orders_per_second=20, params=flow, max_open=3,
                          stop=stop, rng=random.Random(3))
    )  # fmt: skip
    try:

        async def traded() -> bool:
            return len(await rt.fetch_my_trades(market, limit=100)) >= 15

        await eventually(traded, timeout=20)
    finally:
        await stop_cleanly(stop, poor, maker)
    refused = [r.getMessage() for r in caplog.records if "INSUFFICIENT_FUNDS" in r.getMessage()]
    assert refused == []


def test_random_flow_takes_the_funded_side() -> None:
    spec = _spec()
    buy = OrderIntent("buy", "limit", "2.000", "9.00")
    assert funded(buy, spec, 1000, {"USD": Fraction(18)}) == buy
    mirrored = OrderIntent("sell", "limit", "2.000", "11.00")  # around 10.00
    assert funded(buy, spec, 1000, {"USD": Fraction(17), "X": Fraction(2)}) == mirrored
    assert funded(buy, spec, 1000, {"USD": Fraction(17), "X": Fraction("1.999")}) is None
    market_buy = OrderIntent("buy", "market", "1.000")  # 10.00 plus a 10 % margin
    assert funded(market_buy, spec, 1000, {"USD": Fraction(11)}) == market_buy
    assert funded(market_buy, spec, 1000, {"USD": Fraction("10.99")}) is None


def test_market_maker_command_stops_cleanly_on_ctrl_c(exchange: Exchange) -> None:
    """``python -m client.bots.market_maker`` quotes; SIGINT cancels its quotes, exit 0."""
    market, user = asyncio.run(_funded_market(exchange))
    proc = subprocess.Popen(
        [sys.executable, "-m", "client.bots.market_maker", "--url", exchange.url("a"),
         "--email", user, "--password", PASSWORD, "--market", market.lower(),  # upper-cased
         "--reference", "50.00", "--levels", "2", "--size", "0.010", "--interval", "0.5"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:

        async def quoting() -> bool:
            async with exchange.http("a") as http:
                book = (await http.get(f"/markets/{market}/book")).json()
            return len(book["bids"]) == 2 and len(book["asks"]) == 2

        asyncio.run(eventually(quoting, timeout=15))
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "cancel 0, place" in out

    async def empty() -> bool:
        async with exchange.http("a") as http:
            book = (await http.get(f"/markets/{market}/book")).json()
        return book["bids"] == [] and book["asks"] == []

    asyncio.run(eventually(empty, timeout=5))


def test_random_trader_command_cancels_its_orders_on_sigterm(exchange: Exchange) -> None:
    """``kill`` (SIGTERM, as docker stop or systemd send) stops a bot as Ctrl-C does:
    its resting orders are cancelled and it exits 0 (they stayed on the book)."""
    market, user = asyncio.run(_funded_market(exchange))
    proc = subprocess.Popen(
        [sys.executable, "-m", "client.bots.random_trader", "--url", exchange.url("a"),
         "--email", user, "--password", PASSWORD, "--market", market, "--reference", "50.00",
         "--rate", "20", "--market-pct", "0", "--max-size-multiple", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    async def resting() -> int:
        async with exchange.http("a") as http:
            book = (await http.get(f"/markets/{market}/book")).json()
        return len(book["bids"]) + len(book["asks"])

    async def some() -> bool:
        return await resting() >= 3

    async def none() -> bool:
        return await resting() == 0

    try:
        asyncio.run(eventually(some, timeout=15))
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "Traceback" not in out, out
    asyncio.run(eventually(none, timeout=5))


def test_a_killed_market_maker_leaves_no_quotes(exchange: Exchange) -> None:
    """kill -9: nothing of the bot runs, its socket drops, the exchange cancels its
    quotes (cancel on disconnect, on by default)."""
    market, user = asyncio.run(_funded_market(exchange))
    proc = subprocess.Popen(
        [sys.executable, "-m", "client.bots.market_maker", "--url", exchange.url("a"),
         "--email", user, "--password", PASSWORD, "--market", market,
         "--reference", "50.00", "--levels", "2", "--size", "0.010", "--interval", "0.5"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    async def sides(n: int) -> bool:
        async with exchange.http("a") as http:
            book = (await http.get(f"/markets/{market}/book")).json()
        return len(book["bids"]) == len(book["asks"]) == n

    try:
        asyncio.run(eventually(lambda: sides(2), timeout=15))
    finally:
        proc.kill()
        proc.wait()
    asyncio.run(eventually(lambda: sides(0), timeout=5))


async def _funded_market(exchange: Exchange) -> tuple[str, str]:
    market = await new_market(exchange)
    user = await new_user(exchange)
    await fund(exchange, user, {market.split("-")[0]: "1", "USD": "100"})
    return market, user.email


def _spec() -> MarketSpec:
    return MarketSpec.from_market(
        {"id": "X-USD", "base": "X", "quote": "USD", "price_increment": "0.01",
         "size_increment": "0.001"}
    )  # fmt: skip


def _trade_push(trade_id: int, side: str, size: str, fee: str, fee_asset: str,
                market: str = "X-USD") -> dict[str, Any]:  # fmt: skip
    return {"channel": "orders", "exec_type": "TRADE", "market": market,
            "trade_id": trade_id, "order": {"side": side}, "last_size": size, "fee": fee,
            "fee_asset": fee_asset}  # fmt: skip


def test_market_maker_position_counts_pushed_fills_net_of_base_fees() -> None:
    position = Position(_spec())
    position.apply(_trade_push(1, "buy", "0.500", "0.001", "X"))
    position.apply(_trade_push(2, "sell", "0.200", "0.03", "USD"))
    position.apply(_trade_push(3, "sell", "9.000", "0.03", "USD", market="Y-USD"))
    position.apply({**_trade_push(4, "sell", "1.000", "0", "USD"), "exec_type": "CANCELED"})
    position.apply(_trade_push(2, "sell", "0.200", "0.03", "USD"))  # the same trade again
    assert position.base == Fraction("0.299")


def test_market_maker_position_adds_missed_fills_from_history_once() -> None:
    """Fills from ``GET /fills`` count when their push was missed, never twice, and
    never those up to the trade id the bot started after."""
    position = Position(_spec(), after=10)
    position.apply(_trade_push(11, "sell", "0.100", "0.01", "USD"))
    history = [  # newest first, as GET /fills
        {"market": "X-USD", "trade_id": 14, "side": "buy", "size": "0.300", "fee": "0.001",
         "fee_asset": "X"},
        {"market": "X-USD", "trade_id": 12, "side": "sell", "size": "0.200", "fee": "0.02",
         "fee_asset": "USD"},
        {"market": "X-USD", "trade_id": 11, "side": "sell", "size": "0.100", "fee": "0.01",
         "fee_asset": "USD"},
        {"market": "X-USD", "trade_id": 9, "side": "buy", "size": "5.000", "fee": "0",
         "fee_asset": "X"},
    ]  # fmt: skip
    for fill in history:
        position.add_fill(fill)
    assert position.base == Fraction("-0.001")  # -0.1 - 0.2 + 0.3 - 0.001
    position.apply(_trade_push(14, "buy", "0.300", "0.001", "X"))  # its push, late
    assert position.base == Fraction("-0.001")


@pytest.mark.parametrize("bot", [market_maker, random_trader])
def test_bot_commands_report_errors_without_a_traceback(
    bot: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No credentials, or an exchange that is not there: one ``error:`` line, exit 1."""
    monkeypatch.delenv("HFTX_EMAIL", raising=False)
    monkeypatch.delenv("HFTX_PASSWORD", raising=False)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    assert bot.main(["--url", url, "--market", "BTC-USD"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: UNAUTHORIZED (401): give --email/--password"), err
    login = ["--email", "x@example.com", "--password", "whatever-pw"]
    assert bot.main(["--url", url, *login, "--market", "BTC-USD"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: UNAVAILABLE (503): ") and "Traceback" not in err, err


def test_bot_command_refused_by_the_exchange_exits_1(exchange: Exchange) -> None:
    """``python -m client.bots.random_trader`` with a wrong password or an unknown market."""
    market, user = asyncio.run(_funded_market(exchange))

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "client.bots.random_trader", "--url", exchange.url("a"),
             "--email", user, *argv],
            cwd=ROOT, capture_output=True, text=True, timeout=30,
        )  # fmt: skip

    wrong = run("--password", "not-the-password", "--market", market)
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr, wrong.stderr
    assert "error: UNAUTHORIZED (401): " in wrong.stderr
    unknown = run("--password", PASSWORD, "--market", "NOPE-USD")
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr, unknown.stderr
    assert "error: UNKNOWN_MARKET (400): " in unknown.stderr


@pytest.mark.parametrize(
    ("bot", "setting", "message"),
    [
        (market_maker, ["--size", "0.0001"], "0.0001 is not a multiple of 0.001"),
        (market_maker, ["--rate", "0"], "rate must be positive"),
        (market_maker, ["--reference", "-5"], "reference -5 must be at least one tick"),
        (market_maker, ["--interval", "0"], "interval must be positive"),
        (random_trader, ["--max-size-multiple", "0"], "max_size_multiple must be >= 1"),
        (random_trader, ["--max-open", "-1"], "max_open must be >= 0"),
    ],
)
def test_bot_settings_that_cannot_work_are_invalid_param(
    exchange: Exchange, bot: Any, setting: list[str], message: str
) -> None:
    """One ``error: INVALID_PARAM`` line and status 1, not a ValueError's traceback (or,
    for a negative reference or a zero interval, a bot that ran on)."""
    market, user = asyncio.run(_funded_market(exchange))
    done = subprocess.run(
        [sys.executable, "-m", bot.__name__, "--url", exchange.url("a"), "--email", user,
         "--password", PASSWORD, "--market", market, *setting],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"error: INVALID_PARAM (400): {message}"), done.stderr


def test_bot_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        market_maker.main(["--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for shown in ("levels per side (default 3)", "max orders per second (default 5.0)",
                  "(default: HFTX_URL, else http://127.0.0.1:9001)"):  # fmt: skip
        assert shown in out, shown


async def test_market_maker_warns_when_its_reference_crosses_the_book(
    exchange: Exchange, trader: Trader, caplog: pytest.LogCaptureFixture
) -> None:
    """A fixed reference far below the bids: every ask is refused (post-only would take),
    logged at DEBUG only, so the bot warns once that the side is not quoted."""
    caplog.set_level(logging.INFO)
    market = await new_market(exchange)
    base = market.split("-")[0]
    mm = await trader("a", {base: "10", "USD": "10000"})
    bidder = await trader("b", {"USD": "10000"})
    await bidder.create_order(market, "buy", "limit", "0.100", "100.00")
    stop = asyncio.Event()
    params = QuoteParams(levels=2, size="0.100")
    bot = asyncio.create_task(
        run_market_maker(mm, market, params=params, reference="50.00", walk_ticks=0,
                         interval=0.2, max_orders_per_second=50, stop=stop)
    )  # fmt: skip

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    try:

        async def warned() -> bool:
            return any("sell quotes in a row refused as POST_ONLY_WOULD_TAKE" in m
                       for m in warnings())  # fmt: skip

        await eventually(warned, timeout=10)
        bids = [o["price"] for o in await mm.fetch_open_orders(market) if o["side"] == "buy"]
        assert sorted(bids) == ["49.90", "49.95"]  # the other side is quoted
        await asyncio.sleep(1)  # more refused cycles: still one warning
        assert len(warnings()) == 1, warnings()
    finally:
        await stop_cleanly(stop, bot)
    assert_no_errors(caplog)


async def test_market_maker_survives_a_failed_reference_read(
    exchange: Exchange,
    trader: Trader,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Quoting around the book mid on an empty book reads the last trade from the
    ticker; a failure there (a 503 during a Redis restart) skips one cycle instead of
    ending the bot."""
    market = await new_market(exchange)
    base = market.split("-")[0]
    mm = await trader("a", {base: "10", "USD": "10000"})
    other = await trader("b", {base: "1", "USD": "1000"})
    failures = 3
    real_fetch_ticker = mm.fetch_ticker

    async def flaky_fetch_ticker(market_id: str) -> dict[str, Any]:
        nonlocal failures
        if failures:
            failures -= 1
            raise HftxError("UNAVAILABLE", "GET /ticker: connection lost", 503)
        return await real_fetch_ticker(market_id)

    monkeypatch.setattr(mm, "fetch_ticker", flaky_fetch_ticker)
    stop = asyncio.Event()
    params = QuoteParams(levels=1, size="0.100")
    bot = asyncio.create_task(
        run_market_maker(mm, market, params=params, interval=0.2, stop=stop)
    )  # no reference: the book's mid, else the last trade
    try:
        await eventually(lambda: _true_when(failures == 0), timeout=30)
        assert not bot.done(), bot
        await other.create_order(market, "buy", "limit", "0.100", "99.00")
        await other.create_order(market, "sell", "limit", "0.100", "101.00")

        async def quoting() -> bool:
            return len(await mm.fetch_open_orders(market)) == 2

        await eventually(quoting, timeout=10)
    finally:
        await stop_cleanly(stop, bot)
    assert any("requote failed: UNAVAILABLE" in r.getMessage() for r in caplog.records)


async def _true_when(condition: bool) -> bool:
    return condition
