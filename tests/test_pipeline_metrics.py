"""Settler lag and drain backlog per market on the web node's ``/metrics``."""

from __future__ import annotations

import asyncio
import re
import signal

import httpx

from api.pipeline_metrics import market_pipeline
from tests.test_e2e_support import Exchange, Ws, fund, limit, new_market, new_user
from workers.streams import GroupInfo

pytest_plugins = ["tests.test_e2e_support"]


def group(pending: int, lag: int | None) -> GroupInfo:
    return GroupInfo(name="drain", pending=pending, last_delivered="0-0", lag=lag)


def test_gauges_of_one_market() -> None:
    caught_up = market_pipeline("M", "1000-3", "1000-3", group(0, 0), None, 5_000)
    assert (caught_up.settler_lag_s, caught_up.drain_backlog, caught_up.drain_age_s) == (0, 0, 0)
    behind = market_pipeline("M", "4500-0", "1000-3", group(2, 5), 1_500, 5_000)
    assert (behind.settler_lag_s, behind.drain_backlog, behind.drain_age_s) == (3.5, 7, 3.5)
    same_ms = market_pipeline("M", "1000-9", "1000-3", group(0, None), None, 5_000)
    assert (same_ms.settler_lag_s, same_ms.drain_backlog) == (0, 0)  # behind by < 1 ms
    unknown = market_pipeline("M", "1000-3", None, None, None, 5_000)
    assert (unknown.settler_lag_s, unknown.drain_backlog, unknown.drain_age_s) == (None,) * 3
    empty = market_pipeline("M", None, "0-0", group(0, 0), None, 5_000)
    assert empty.settler_lag_s == 0


def gauge(text: str, name: str, market: str) -> float | None:
    found = re.search(rf'^{name}{{market="{re.escape(market)}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else None


async def scrape(exchange: Exchange) -> str:
    async with httpx.AsyncClient(base_url=exchange.url("a")) as http:
        r = await http.get("/metrics")
        assert r.status_code == 200
        return r.text


async def test_metrics_show_the_settler_and_the_drain_falling_behind(exchange: Exchange) -> None:
    market = await new_market(exchange)
    user = await new_user(exchange)
    await fund(exchange, user, {"USD": "10"})
    ws = await Ws.connect(exchange.ws_url("a"), user.token)
    first = await ws.request("order.place", limit(market, "buy", "0.001", "1.00"))
    assert first["status"] == 200
    settler, drain = exchange.procs["settler"], exchange.procs["drain"]

    async def caught_up() -> str:
        for _ in range(100):
            text = await scrape(exchange)
            if gauge(text, "hftx_settler_lag_seconds", market) == 0 and (
                gauge(text, "hftx_drain_backlog_entries", market) == 0
            ):
                return text
            await asyncio.sleep(0.05)
        raise AssertionError(f"not caught up:\n{text}")

    await caught_up()
    settler.send_signal(signal.SIGSTOP)
    drain.send_signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(0.3)  # entries 300 ms apart: the settler is that far behind
        await ws.request("order.place", limit(market, "buy", "0.001", "1.00"))
        text = await scrape(exchange)
        assert (gauge(text, "hftx_settler_lag_seconds", market) or 0) >= 0.25
        assert gauge(text, "hftx_drain_backlog_entries", market) == 1
        assert (gauge(text, "hftx_drain_backlog_age_seconds", market) or -1) >= 0
    finally:
        settler.send_signal(signal.SIGCONT)
        drain.send_signal(signal.SIGCONT)
    await caught_up()
    await ws.close()
