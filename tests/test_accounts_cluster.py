"""Accounts on a real 3-node Valkey cluster: every function stays in one slot, and
account and market shards live on different nodes."""

from __future__ import annotations

from typing import Any

import pytest

from engine import accounts, addresses, keys, registry
from engine.exchange import Exchange
from engine.types import Balance, OrderRequest
from tests.test_accounts_support import BTC_USD, COIN, fund, setup_assets, totals
from workers.reconciler import reconcile_holds
from workers.settler import Settler

pytestmark = pytest.mark.cluster


def node_of(cluster: Any, key: str) -> str:
    return cluster.get_node_from_key(key).name


async def test_full_account_flow_on_a_cluster(redis_cluster: Any) -> None:
    r = redis_cluster
    market_node = node_of(r, keys.market_cfg("BTC-USD"))
    # two users whose shards are on nodes other than the market's, and apart
    users: list[str] = []
    for i in range(100):
        node = node_of(r, accounts.account_keys(f"user{i}")[0])
        if node != market_node and all(
            node_of(r, accounts.account_keys(u)[0]) != node for u in users
        ):
            users.append(f"user{i}")
    alice, bob = users[:2]
    assert len({market_node, *(node_of(r, accounts.account_keys(u)[0]) for u in (alice, bob))}) == 3

    await setup_assets(r)
    await registry.create_market(r, BTC_USD, 1)
    await fund(r, alice, "USD", 100_000 * COIN)
    await fund(r, bob, "BTC", 10 * COIN)
    ex = Exchange(r)
    sell = OrderRequest("BTC-USD", "sell", "limit", 2 * COIN, 30_000 * COIN)
    await ex.place_order(bob, sell)
    await ex.place_order(alice, OrderRequest("BTC-USD", "buy", "limit", COIN, 31_000 * COIN))
    bob_usd = await addresses.deposit_address(r, bob, "USD")
    await accounts.transfer(r, alice, "t1", "USD", 1_000 * COIN, bob_usd)
    await accounts.request_withdrawal(r, bob, "w1", "BTC", COIN, "ext1")
    await accounts.complete_withdrawal(r, "w1")
    await accounts.hold(r, alice, "999", "BTC-USD", "USD", COIN, now=1)  # never placed
    await ex.close()

    stats = await Settler(r).drain()
    assert stats.entries >= 3
    assert (await reconcile_holds(r)).released == [(alice, "999")]
    assert await accounts.balances(r, alice) == [
        Balance("BTC", COIN - COIN // 500, 0, 0),
        Balance("USD", 69_000 * COIN, 0, 0),
    ]
    assert await accounts.balances(r, bob) == [
        Balance("BTC", 7 * COIN, COIN, 0),
        Balance("USD", 30_970 * COIN, 0, 0),
    ]
    assert await totals(r, [alice, bob]) == {"BTC": 9 * COIN, "USD": 100_000 * COIN}
