"""The exchange's fee account over the admin API: what the fees of a trade added, and
moving collected fees to an account on the platform. Real web nodes and workers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.test_e2e_support import (
    Exchange,
    Ws,
    balances,
    eventually,
    fund,
    limit,
    new_market,
    new_user,
    unique,
)

pytest_plugins = ["tests.test_e2e_support"]


async def fees(exchange: Exchange) -> dict[str, Decimal]:
    async with exchange.admin() as admin:
        r = await admin.get("/admin/fees")
        assert r.status_code == 200, r.text
        return {b["asset"]: Decimal(b["total"]) for b in r.json()}


async def test_trade_fees_reach_the_fee_account_and_can_be_moved_out(
    exchange: Exchange,
) -> None:
    market = await new_market(exchange)  # maker 10 bps, taker 20 bps
    base = market.split("-")[0]
    maker, taker, treasury = (
        await new_user(exchange),
        await new_user(exchange),
        await new_user(exchange),
    )
    await fund(exchange, maker, {base: "1"})
    await fund(exchange, taker, {"USD": "1000"})
    before = await fees(exchange)
    for user, side, tif in ((maker, "sell", "GTC"), (taker, "buy", "IOC")):
        ws = await Ws.connect(exchange.ws_url(), user.token)
        answer = await ws.request("order.place", limit(market, side, "1", "100", time_in_force=tif))
        assert answer["status"] == 200, answer
        await ws.close()
    # maker sold 1 for 100 USD: 0.1 USD fee; taker bought 1 base: 0.002 base fee

    async def collected() -> dict[str, Decimal] | None:
        now = await fees(exchange)
        got = {a: now.get(a, Decimal(0)) - before.get(a, Decimal(0)) for a in ("USD", base)}
        return got if got == {"USD": Decimal("0.1"), base: Decimal("0.002")} else None

    await eventually(collected)
    async with exchange.http("a", treasury.token) as http:
        to = {a["asset"]: a["address"] for a in (await http.get("/addresses")).json()}["USD"]
    move: dict[str, Any] = {"transfer_id": unique("fee-"), "asset": "USD", "amount": "0.1",
                            "to_address": to}  # fmt: skip
    async with exchange.admin() as admin:
        r = await admin.post("/admin/fees/transfers", json=move)
        assert r.status_code == 200 and r.json()["status"] == "COMPLETED", r.text
        again = await admin.post("/admin/fees/transfers", json=move)
        assert again.json()["replay"] is True
        r = await admin.post("/admin/fees/transfers", json={**move, "transfer_id": unique("f"),
                                                            "amount": "1000000"})  # fmt: skip
        assert (r.status_code, r.json()["error"]["code"]) == (400, "INSUFFICIENT_FUNDS")
    assert (await balances(exchange, treasury))["USD"]["total"] == "0.10000000"
    after = await fees(exchange)
    assert after.get("USD", Decimal(0)) - before.get("USD", Decimal(0)) == 0
