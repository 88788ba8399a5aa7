"""P2P on a real 3-node Valkey cluster: seller, buyer and the global indexes on
three different nodes; the escrow is released on the seller's node and the buyer is
credited on hers through the outbox, exactly once."""

from __future__ import annotations

from typing import Any

import pytest

from engine import accounts, notify
from engine.p2p_keys import OFFERS
from engine.types import Balance
from tests.p2p_helpers import COIN, new_desk, spec
from workers.settler import Settler

pytestmark = pytest.mark.cluster


def node_of(cluster: Any, key: str) -> str:
    return cluster.get_node_from_key(key).name


async def test_trades_between_accounts_on_different_nodes(redis_cluster: Any) -> None:
    r = redis_cluster
    g = node_of(r, OFFERS)
    users: list[str] = []
    for i in range(200):
        node = node_of(r, accounts.account_keys(f"u{i}")[0])
        if node != g and all(node_of(r, accounts.account_keys(u)[0]) != node for u in users):
            users.append(f"u{i}")
        if len(users) == 2:
            break
    seller, buyer = users
    desk, ledger = await new_desk(r, [seller, buyer, "fees"])
    await ledger.fund(seller, "BTC", 2 * COIN)

    sell = await desk.create_offer(seller, spec("sell", COIN))
    t1 = await desk.take_offer(buyer, sell.id, COIN // 2)
    await desk.mark_paid(buyer, t1.id)
    await desk.post_message(buyer, t1.id, "paid by SEPA")
    await desk.confirm_release(seller, t1.id)
    buy = await desk.create_offer(buyer, spec("buy", COIN))
    t2 = await desk.take_offer(seller, buy.id, COIN // 4)
    await desk.cancel_trade(buyer, t2.id)
    await ledger.check(desk)

    await Settler(r, instance="tests", publish=False).drain()
    assert await accounts.balances(r, buyer) == [Balance("BTC", COIN // 2, 0, 0)]
    assert await accounts.balances(r, seller) == [Balance("BTC", COIN, 0, COIN // 2)]
    assert (await desk.get_offer(buy.id)).amount == COIN
    assert [m.body for m in await desk.messages(seller, t1.id)] == ["paid by SEPA"]
    assert {t.id for t in await desk.my_trades(buyer)} == {t1.id, t2.id}
    assert len(await notify.inbox(r, buyer)) >= 5
    await ledger.check(desk)
