"""Double spend: many concurrent clients on separate connections (real Valkey) place
orders, request withdrawals and transfer, each fitting the balance, together not."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aredis

from engine import accounts, addresses, registry
from engine.exchange import Exchange
from engine.types import EngineError, OrderRequest
from tests.test_accounts_support import BTC_USD, COIN, fund, setup_assets

CLIENTS = 32
TRIES = 8  # per client
BID = OrderRequest(market="BTC-USD", side="buy", type="limit", amount=10_000, price=30_000 * COIN)


async def test_concurrent_holds_withdrawals_and_transfers_never_overspend(
    redis_real: Any, valkey_url: str
) -> None:
    await setup_assets(redis_real)
    await registry.create_market(redis_real, BTC_USD, 1)
    await fund(redis_real, "alice", "USD", 100 * COIN)
    bob = await addresses.deposit_address(redis_real, "bob", "USD")
    amount = 3 * COIN  # each fits, 256 of them do not (33 do)

    async def client(i: int) -> int:
        r = aredis.Redis.from_url(valkey_url)
        accepted = 0
        try:
            for j in range(TRIES):
                try:
                    kind = (i + j) % 3
                    if kind == 0:  # a limit buy of 0.0001 BTC at 30000: 3 USD
                        await Exchange(r).place_order("alice", BID)
                    elif kind == 1:
                        await accounts.request_withdrawal(
                            r, "alice", f"w{i}-{j}", "USD", amount, "ext"
                        )
                    else:
                        await accounts.transfer(r, "alice", f"t{i}-{j}", "USD", amount, bob)
                    accepted += amount
                except EngineError as exc:
                    assert exc.code == "INSUFFICIENT_FUNDS"
        finally:
            await r.aclose()
        return accepted

    accepted = sum(await asyncio.gather(*(client(i) for i in range(CLIENTS))))
    assert accepted == 33 * amount  # every call that could fit was accepted, none more
    b = await accounts.balance(redis_real, "alice", "USD")
    transferred = 100 * COIN - b.available - b.held
    assert b.available == 100 * COIN - accepted == COIN
    assert b.held + transferred == accepted
