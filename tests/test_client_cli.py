"""``python -m client`` (client/cli.py) against a real exchange."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass

import pytest

from client import cli
from tests.test_e2e_support import (
    PASSWORD,
    ROOT,
    Exchange,
    User,
    balances,
    eventually,
    fund,
    new_market,
    new_user,
    unique,
)

pytest_plugins = ["tests.test_e2e_support"]


@dataclass
class Run:
    code: int
    out: str
    err: str


async def run_cli(
    capsys: pytest.CaptureFixture[str], exchange: Exchange, user: User | None, *argv: str
) -> Run:
    """``main(argv)`` in a thread (it runs its own event loop), output captured."""
    login = ["--email", user.email, "--password", PASSWORD] if user else []
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, ["--url", exchange.url("b"), *login, *argv])
    out, err = capsys.readouterr()
    return Run(code, out, err)


async def test_cli_trading_commands(exchange: Exchange, capsys: pytest.CaptureFixture[str]) -> None:
    market = await new_market(exchange)
    base = market.split("-")[0]
    user = await new_user(exchange)
    await fund(exchange, user, {base: "5", "USD": "100"})

    listed = await run_cli(capsys, exchange, None, "markets")
    assert listed.code == 0  # columns are as wide as the longest value of any market
    assert [market, "TRADING", "0.01", "0.001", "0.001", "10", "20"] in [
        line.split() for line in listed.out.splitlines()
    ]
    shown = await run_cli(capsys, exchange, user, "balances")
    assert shown.code == 0
    assert any(line.split() == ["USD", "100.00000000", "0.00000000", "100.00000000"]
               for line in shown.out.splitlines())  # fmt: skip

    placed = await run_cli(
        capsys, exchange, user, "place", "sell", market, "1", "20", "--client-order-id", "cli.1"
    )
    assert placed.code == 0, placed.err
    order_id = placed.out.split()[0]
    assert f"{market} sell limit 1.000 @ 20.00: NEW, filled 0.000 (client id cli.1)" in placed.out
    opened = await run_cli(capsys, exchange, user, "orders", "--market", market.lower())
    assert opened.code == 0 and order_id in opened.out and "cli.1" in opened.out
    book = await run_cli(capsys, exchange, None, "book", market.lower(), "--depth", "5")
    assert book.code == 0 and ["ask", "20.00", "1.000"] in [
        line.split() for line in book.out.splitlines()
    ]

    refused = await run_cli(capsys, exchange, user, "place", "buy", market, "1", "25",
                            "--post-only")  # fmt: skip
    assert refused.code == 1 and refused.out == ""
    assert refused.err.startswith("error: POST_ONLY_WOULD_TAKE (400): ")
    duplicate = await run_cli(capsys, exchange, user, "place", "sell", market, "1", "21",
                              "--client-order-id", "cli.1")  # fmt: skip
    assert duplicate.code == 1 and "DUPLICATE_CLIENT_ORDER_ID (409)" in duplicate.err
    assert order_id in duplicate.err  # the existing order is shown
    for bad in (["abc", "10"], ["1", "1e999999"], []):
        wrong = await run_cli(capsys, exchange, user, "place", "buy", market, *bad)
        assert wrong.code == 1 and wrong.err.startswith("error: INVALID_PARAM (400): "), bad
    poor = await run_cli(capsys, exchange, user, "place", "buy", market, "100", "10")
    assert poor.code == 1 and "error: INSUFFICIENT_FUNDS (400)" in poor.err

    amended = await run_cli(capsys, exchange, user, "amend", order_id, "0.6")
    assert amended.code == 0, amended.err
    assert f"{market} sell limit 0.600 @ 20.00: NEW, filled 0.000" in amended.out
    up = await run_cli(capsys, exchange, user, "amend", order_id, "2")
    assert up.code == 1 and up.err.startswith("error: INVALID_PARAM (400): ")
    canceled = await run_cli(capsys, exchange, user, "cancel", order_id)
    assert canceled.code == 0 and "CANCELED" in canceled.out
    again = await run_cli(capsys, exchange, user, "cancel", order_id)
    assert again.code == 1  # the exchange says "unknown order"; the CLI says why
    assert again.err.startswith(
        f"error: UNKNOWN_ORDER (404): order {order_id} is already CANCELED: only open orders"
    ), again.err
    late = await run_cli(capsys, exchange, user, "amend", order_id, "0.5")
    assert late.code == 1 and late.err == (
        f"error: UNKNOWN_ORDER (404): order {order_id} is already CANCELED: only open orders"
        " can be amended\n"
    )  # was "unknown order", as for an order that does not exist
    missing = await run_cli(capsys, exchange, user, "cancel", "12345")
    assert missing.code == 1 and missing.err == "error: UNKNOWN_ORDER (404): unknown order\n"
    for price in ("30", "31"):
        assert (
            await run_cli(capsys, exchange, user, "place", "sell", market, "1", price)
        ).code == 0
    all_canceled = await run_cli(capsys, exchange, user, "cancel", "--all", "--market", market)
    assert all_canceled.code == 0 and f"canceled 2 order(s) on {market}" in all_canceled.out

    async def released() -> bool:
        return (await balances(exchange, user))[base]["locked"] == "0.00000000"

    await eventually(released)
    traded = await run_cli(capsys, exchange, user, "place", "sell", market, "0.5")
    assert traded.code == 0 and "market" in traded.out and "EXPIRED" in traded.out


async def test_cli_wallet_commands(exchange: Exchange, capsys: pytest.CaptureFixture[str]) -> None:
    alice, bob = await new_user(exchange), await new_user(exchange)
    await fund(exchange, alice, {"USD": "50"})
    shown = await run_cli(capsys, exchange, bob, "address", "usd")
    assert shown.code == 0
    rows = [line.split() for line in shown.out.splitlines()[2:]]
    assert len(rows) == 1 and rows[0][0] == "USD"
    address = rows[0][1]
    unknown = await run_cli(capsys, exchange, bob, "address", "nope")
    assert (unknown.code, unknown.out) == (1, "")  # was an empty table, exit 0
    assert unknown.err.startswith("error: INVALID_PARAM (400): no asset NOPE (assets: ")
    transfer_id = unique("cli-t-")
    for replay in ("False", "True"):
        sent = await run_cli(capsys, exchange, alice, "transfer", "usd", "12.5", address,
                             "--id", transfer_id)  # fmt: skip
        assert sent.code == 0, sent.err
        first = sent.out.splitlines()[0]
        if replay == "False":
            assert first == f"transferred 12.5 USD to {address}"
        else:  # nothing moved: says so
            assert (
                first
                == f"already transferred 12.5 USD to {address} (transfer id {transfer_id}: replay)"
            )
        assert f"replay={replay}" in sent.out
    assert (await balances(exchange, alice))["USD"]["total"] == "37.50000000"
    for amount, to in (("1", "no-such-address"), ("abc", address)):
        bad = await run_cli(capsys, exchange, alice, "transfer", "USD", amount, to)
        assert bad.code == 1 and bad.err.startswith("error: INVALID_PARAM (400)"), bad
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{probe.getsockname()[1]}"
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, ["--url", nowhere, "markets"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith(f"error: UNAVAILABLE (503): GET {nowhere}/api/v1/markets")
    anonymous = await run_cli(capsys, exchange, None, "balances")
    assert anonymous.code == 1 and "UNAUTHORIZED" in anonymous.err
    watch = await run_cli(capsys, exchange, None, "book", "BTC-USD", "--watch")
    assert (watch.code, watch.out) == (1, "")
    assert watch.err.startswith("error: UNAUTHORIZED (401): book --watch streams over")
    for depth in ("0", "1001"):  # --watch refuses what GET /book refuses
        flat = await run_cli(capsys, exchange, bob, "book", "BTC-USD", "--depth", depth)
        live = await run_cli(capsys, exchange, bob, "book", "BTC-USD", "--depth", depth, "--watch")
        for run in (flat, live):
            assert (run.code, run.out) == (1, "")
            assert run.err == "error: INVALID_PARAM (400): depth must be an integer 1..1000\n"


def test_python_dash_m_client_exit_codes(exchange: Exchange) -> None:
    """The real entry point: output on stdout, errors on stderr, exit status 0/1."""

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "client", "--url", exchange.url("a"), *argv],
            cwd=ROOT, capture_output=True, text=True, timeout=30,
        )  # fmt: skip

    ok = run("markets")
    assert ok.returncode == 0 and "market" in ok.stdout.splitlines()[0] and ok.stderr == ""
    email = f"{unique('cli')}@e2e.hftx.dev"
    login = ["--email", email, "--password", PASSWORD]
    first = run(*login, "--signup", "balances")
    assert first.returncode == 0, first.stderr
    refused = run(*login, "place", "buy", "NOPE-USD", "1", "1")
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("error: UNKNOWN_MARKET (400)")
    assert "Traceback" not in refused.stderr


def test_book_watch_draws_the_live_book_until_ctrl_c(exchange: Exchange) -> None:
    market, email = asyncio.run(_market_with_a_bid(exchange))
    proc = subprocess.Popen(
        [sys.executable, "-m", "client", "--url", exchange.url("a"), "--email", email,
         "--password", PASSWORD, "book", market, "--watch"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    killer = threading.Timer(20, proc.kill)  # bounds the blocking reads below
    killer.start()
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]  # title, header, rule, gap, bid
        assert f"{market} seq " in lines[0] and "checksum" in lines[0], lines
        assert ["bid", "7.00", "1.000"] in [line.split() for line in lines]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and "Traceback" not in err, err


async def _market_with_a_bid(exchange: Exchange) -> tuple[str, str]:
    market = await new_market(exchange)
    user = await new_user(exchange)
    await fund(exchange, user, {"USD": "10"})
    async with exchange.http("a", user.token) as http:
        r = await http.post("/orders", json={"market": market, "side": "buy", "type": "limit",
                                             "amount": "1", "price": "7"})  # fmt: skip
        assert r.status_code == 200, r.text
    return market, user.email


async def test_signup_flag_says_why_a_sign_up_failed(
    exchange: Exchange, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--signup`` goes on to log in only when the account exists already; another
    refusal is the error shown (a short password was 'invalid email or password')."""
    email = f"{unique('cli')}@e2e.hftx.dev"

    async def run(password: str) -> Run:
        capsys.readouterr()
        argv = ["--url", exchange.url("b"), "--email", email, "--password", password]
        code = await asyncio.to_thread(cli.main, [*argv, "--signup", "balances"])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    short = await run("short")
    assert short.code == 1 and short.out == ""
    assert short.err == "error: INVALID_PARAM (400): password must be 8 to 128 characters\n"
    for _ in range(2):  # signs up, then finds the account there
        made = await run(PASSWORD)
        assert made.code == 0 and made.err == "" and "USD" in made.out, made


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_output_into_a_closed_pipe_ends_quietly(exchange: Exchange, unbuffered: str) -> None:
    """``python -m client markets | head -0``: no traceback (nor Python's "Exception
    ignored" at exit), status 1, whether stdout is buffered or not."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "client", "--url", exchange.url("a"), "markets"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": unbuffered},
    )  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before anything is written
    _, err = proc.communicate(timeout=30)
    assert (proc.returncode, err) == (1, "")
