"""Account shard: holds, wallet operations, replays and refused input (fake + real)."""

from __future__ import annotations

from typing import Any

import pytest

from engine import accounts, addresses
from engine.settlement import CreditOp, DoneOp, TradeOp
from engine.types import Balance, EngineError
from tests.test_accounts_support import COIN, dump_account, fund, setup_assets


@pytest.fixture
async def r(redis: Any) -> Any:
    await setup_assets(redis)
    return redis


async def refused(redis: Any, user: str, code: str | tuple[str, ...], call: Any) -> EngineError:
    """``call`` fails with ``code`` and leaves the user's account keys unchanged."""
    before = await dump_account(redis, user)
    with pytest.raises(EngineError) as info:
        await call
    assert info.value.code in ((code,) if isinstance(code, str) else code), info.value
    assert await dump_account(redis, user) == before
    return info.value


# -- deposits ----------------------------------------------------------------------


async def test_deposit_credits_the_owner_of_the_address_once(r: Any) -> None:
    address = await addresses.deposit_address(r, "alice", "BTC")
    first = await accounts.deposit(r, "d1", address, "BTC", 2 * COIN)
    again = await accounts.deposit(r, "d1", address, "BTC", 2 * COIN)
    assert (first.user, first.replay, first.available) == ("alice", False, 2 * COIN)
    assert (again.replay, again.available) == (True, 2 * COIN)
    assert await accounts.balances(r, "alice") == [Balance("BTC", 2 * COIN, 0, 0)]


async def test_deposit_id_reused_with_another_amount_is_refused(r: Any) -> None:
    address = await fund(r, "alice", "BTC", COIN, "d1")
    await refused(r, "alice", "INVALID_PARAM", accounts.deposit(r, "d1", address, "BTC", 2 * COIN))


@pytest.mark.parametrize("amount", [0, -5, 2**53])
async def test_deposit_bad_amount_is_refused(r: Any, amount: int) -> None:
    address = await fund(r, "alice", "BTC", COIN)
    await refused(r, "alice", "INVALID_PARAM", accounts.deposit(r, "dx", address, "BTC", amount))


async def test_deposit_to_unknown_asset_or_wrong_address_is_refused(r: Any) -> None:
    btc = await fund(r, "alice", "BTC", COIN)
    typo = btc[:-3] + ("q" if btc[-3] != "q" else "p") + btc[-2:]
    unknown = addresses.derive("nobody", "BTC", addresses.address_secret())
    for asset, address in (("DOGE", btc), ("USD", btc), ("BTC", typo), ("BTC", unknown)):
        err = await refused(
            r, "alice", "INVALID_PARAM", accounts.deposit(r, "dx", address, asset, 1)
        )
        assert err.message


# -- holds -------------------------------------------------------------------------


async def test_hold_moves_available_to_held_and_is_idempotent(r: Any) -> None:
    await fund(r, "alice", "USD", 100 * COIN)
    first = await accounts.hold(r, "alice", "o1", "BTC-USD", "USD", 30 * COIN)
    again = await accounts.hold(r, "alice", "o1", "BTC-USD", "USD", 30 * COIN)
    assert (first.kind, first.amount) == ("new", 30 * COIN)
    assert (again.kind, again.amount) == ("replay", 30 * COIN)
    assert await accounts.balance(r, "alice", "USD") == Balance("USD", 70 * COIN, 30 * COIN, 0)
    [h] = await accounts.holds(r, "alice")
    assert (h.order_id, h.market, h.asset, h.amount) == ("o1", "BTC-USD", "USD", 30 * COIN)


async def test_hold_above_available_is_refused(r: Any) -> None:
    await fund(r, "alice", "USD", 100 * COIN)
    await accounts.hold(r, "alice", "o1", "BTC-USD", "USD", 60 * COIN)
    await refused(
        r,
        "alice",
        "INSUFFICIENT_FUNDS",
        accounts.hold(r, "alice", "o2", "BTC-USD", "USD", 41 * COIN),
    )


@pytest.mark.parametrize(
    ("order_id", "market", "asset", "amount", "cid"),
    [
        ("o 1", "BTC-USD", "USD", 1, ""),
        ("o1", "BTCUSD", "USD", 1, ""),
        ("o1", "BTC-USD", "usd", 1, ""),
        ("o1", "BTC-USD", "USD", 0, ""),
        ("o1", "BTC-USD", "USD", -1, ""),
        ("o1", "BTC-USD", "USD", 1, "bad cid!"),
    ],
)
async def test_hold_bad_input_is_refused(
    r: Any, order_id: str, market: str, asset: str, amount: int, cid: str
) -> None:
    await fund(r, "alice", "USD", 100 * COIN)
    call = accounts.hold(r, "alice", order_id, market, asset, amount, client_order_id=cid)
    await refused(r, "alice", "INVALID_PARAM", call)


async def test_client_order_id_is_unique_per_user(r: Any) -> None:
    await fund(r, "alice", "USD", 100 * COIN)
    await fund(r, "bob", "USD", 100 * COIN)
    await accounts.hold(r, "alice", "o1", "BTC-USD", "USD", COIN, client_order_id="my-1")
    before = await dump_account(r, "alice")
    dup = await accounts.hold(r, "alice", "o2", "BTC-USD", "USD", COIN, client_order_id="my-1")
    assert (dup.kind, dup.existing) == ("duplicate", ("BTC-USD", "o1"))
    assert await dump_account(r, "alice") == before
    # the same order retried is a replay, and another user may use the same id
    assert (
        await accounts.hold(r, "alice", "o1", "BTC-USD", "USD", COIN, client_order_id="my-1")
    ).kind == "replay"
    assert (
        await accounts.hold(r, "bob", "o3", "BTC-USD", "USD", COIN, client_order_id="my-1")
    ).kind == "new"


async def test_release_returns_the_hold_once_and_frees_the_client_order_id(r: Any) -> None:
    await fund(r, "alice", "USD", 100 * COIN)
    await accounts.hold(r, "alice", "o1", "BTC-USD", "USD", 30 * COIN, client_order_id="c1")
    assert await accounts.release(r, "alice", "o1") == 30 * COIN
    assert await accounts.release(r, "alice", "o1") == 0
    assert await accounts.balance(r, "alice", "USD") == Balance("USD", 100 * COIN, 0, 0)
    assert await accounts.holds(r, "alice") == []
    assert (
        await accounts.hold(r, "alice", "o2", "BTC-USD", "USD", COIN, client_order_id="c1")
    ).kind == "new"


# -- withdrawals -------------------------------------------------------------------


async def test_withdrawal_request_complete_and_replays(r: Any) -> None:
    await fund(r, "alice", "BTC", 5 * COIN)
    req = await accounts.request_withdrawal(r, "alice", "w1", "BTC", 2 * COIN, "bc1external")
    assert (req.state, req.replay) == ("requested", False)
    assert (
        await accounts.request_withdrawal(r, "alice", "w1", "BTC", 2 * COIN, "bc1external")
    ).replay
    assert await accounts.balance(r, "alice", "BTC") == Balance("BTC", 3 * COIN, 2 * COIN, 0)
    done = await accounts.complete_withdrawal(r, "w1")  # the owner is found by id
    assert (done.user, done.state, done.replay) == ("alice", "done", False)
    assert (await accounts.complete_withdrawal(r, "w1")).replay
    assert await accounts.balance(r, "alice", "BTC") == Balance("BTC", 3 * COIN, 0, 0)
    await refused(r, "alice", "INVALID_PARAM", accounts.reject_withdrawal(r, "w1"))


async def test_withdrawal_reject_returns_the_amount_once(r: Any) -> None:
    await fund(r, "alice", "BTC", 5 * COIN)
    await accounts.request_withdrawal(r, "alice", "w1", "BTC", 2 * COIN, "bc1external")
    assert (await accounts.reject_withdrawal(r, "w1", user="alice")).state == "rejected"
    assert (await accounts.reject_withdrawal(r, "w1")).replay
    assert await accounts.balance(r, "alice", "BTC") == Balance("BTC", 5 * COIN, 0, 0)
    await refused(r, "alice", "INVALID_PARAM", accounts.complete_withdrawal(r, "w1"))


async def test_withdrawal_bad_input_is_refused(r: Any) -> None:
    own = await fund(r, "alice", "BTC", 5 * COIN)
    await accounts.request_withdrawal(r, "alice", "w1", "BTC", COIN, "bc1external")
    cases = [
        ("INSUFFICIENT_FUNDS", ("w2", "BTC", 4 * COIN + 1, "bc1external")),
        ("INVALID_PARAM", ("w2", "BTC", 0, "bc1external")),
        ("INVALID_PARAM", ("w2", "BTC", -1, "bc1external")),
        ("INVALID_PARAM", ("w2", "DOGE", 1, "bc1external")),
        ("INVALID_PARAM", ("w2", "BTC", 1, "not an address")),
        ("INVALID_PARAM", ("w2", "BTC", 1, own)),  # an hftx address: that is a transfer
        ("INVALID_PARAM", ("w1", "BTC", 2 * COIN, "bc1external")),  # id reused, other amount
    ]
    for code, args in cases:
        await refused(r, "alice", code, accounts.request_withdrawal(r, "alice", *args))
    await refused(r, "alice", "INVALID_PARAM", accounts.complete_withdrawal(r, "w9", user="alice"))


async def test_withdrawal_id_of_another_user_is_refused(r: Any) -> None:
    await fund(r, "alice", "BTC", 5 * COIN)
    await fund(r, "bob", "BTC", 5 * COIN)
    await accounts.request_withdrawal(r, "alice", "w1", "BTC", COIN, "bc1external")
    await refused(
        r, "bob", "INVALID_PARAM", accounts.request_withdrawal(r, "bob", "w1", "BTC", COIN, "bc1x")
    )


# -- transfers ---------------------------------------------------------------------


async def test_transfer_debits_payer_and_credit_applies_once(r: Any) -> None:
    await fund(r, "alice", "USD", 10 * COIN)
    bob_usd = await addresses.deposit_address(r, "bob", "USD")
    t = await accounts.transfer(r, "alice", "t1", "USD", 4 * COIN, bob_usd)
    assert (t.payee, t.replay) == ("bob", False)
    again = await accounts.transfer(r, "alice", "t1", "USD", 4 * COIN, bob_usd)
    assert (again.replay, again.outbox_id) == (True, t.outbox_id)
    assert await accounts.balance(r, "alice", "USD") == Balance("USD", 6 * COIN, 0, 0)
    op = CreditOp(t.outbox_id, 1, "alice", "t1", "USD", 4 * COIN)
    applied = await accounts.credit(r, "bob", "alice", [op])
    assert applied.ops == 1 and applied.balances == [Balance("USD", 4 * COIN, 0, 0)]
    assert (await accounts.credit(r, "bob", "alice", [op])).ops == 0
    assert await accounts.balance(r, "bob", "USD") == Balance("USD", 4 * COIN, 0, 0)


async def test_transfer_bad_input_is_refused(r: Any) -> None:
    own = await fund(r, "alice", "USD", 10 * COIN)
    bob_usd = await addresses.deposit_address(r, "bob", "USD")
    bob_btc = await addresses.deposit_address(r, "bob", "BTC")
    typo = bob_usd[:-1] + ("q" if bob_usd[-1] != "q" else "p")
    await accounts.transfer(r, "alice", "t1", "USD", COIN, bob_usd)
    cases = [
        ("INSUFFICIENT_FUNDS", ("t2", "USD", 9 * COIN + 1, bob_usd)),
        ("INVALID_PARAM", ("t2", "USD", 0, bob_usd)),
        ("INVALID_PARAM", ("t2", "USD", -3, bob_usd)),
        ("INVALID_PARAM", ("t2", "USD", COIN, own)),
        ("INVALID_PARAM", ("t2", "USD", COIN, typo)),
        ("INVALID_PARAM", ("t2", "USD", COIN, addresses.derive("carol", "USD", "x"))),
        ("INVALID_PARAM", ("t2", "USD", COIN, bob_btc)),
        ("INVALID_PARAM", ("t2", "DOGE", COIN, bob_usd)),
        ("INVALID_PARAM", ("t1", "USD", 2 * COIN, bob_usd)),  # id reused, other amount
    ]
    for code, args in cases:
        await refused(r, "alice", code, accounts.transfer(r, "alice", *args))


async def test_unknown_user_id_is_refused(r: Any) -> None:
    with pytest.raises(EngineError) as info:
        await accounts.balances(r, "bad user}")
    assert info.value.code == "INVALID_PARAM"


async def test_client_order_lookup_and_withdrawal_listing(r: Any) -> None:
    await fund(r, "alice", "USD", 10 * COIN)
    await accounts.hold(r, "alice", "o1", "BTC-USD", "USD", COIN, client_order_id="c-1")
    assert await accounts.client_order(r, "alice", "c-1") == ("BTC-USD", "o1")
    assert await accounts.client_order(r, "alice", "c-2") is None
    await accounts.request_withdrawal(r, "alice", "w1", "USD", COIN, "ext1", now=5)
    await accounts.request_withdrawal(r, "alice", "w2", "USD", 2 * COIN, "ext2", now=6)
    await accounts.reject_withdrawal(r, "w2")
    listed = [(w.id, w.amount, w.address, w.state) for w in await accounts.withdrawals(r, "alice")]
    assert listed == [("w1", COIN, "ext1", "requested"), ("w2", 2 * COIN, "ext2", "rejected")]


async def test_settle_entry_applies_each_position_once_and_refuses_bad_ops(r: Any) -> None:
    await fund(r, "alice", "USD", 100 * COIN)
    await accounts.hold(r, "alice", "o1", "BTC-USD", "USD", 60 * COIN)
    fill = TradeOp("5", 1, "o1", 1, "taker", "USD", 30 * COIN, "BTC", 1000, 2)
    applied = await accounts.settle_entry(r, "alice", "BTC-USD", [fill])
    assert applied.ops == 1
    assert applied.balances == [Balance("USD", 40 * COIN, 30 * COIN, 0), Balance("BTC", 998, 0, 0)]
    assert (await accounts.settle_entry(r, "alice", "BTC-USD", [fill])).ops == 0  # replay
    done = DoneOp("7", 2, "o1")
    bad = [
        [TradeOp("8", 1, "o1", 2, "taker", "USD", 31 * COIN, "BTC", 1, 0)],  # beyond the hold
        [TradeOp("8", 1, "o1", 2, "taker", "BTC", 1, "USD", 1, 0)],  # hold is in USD
        [TradeOp("8", 1, "o1", 2, "taker", "USD", 1, "BTC", 1, 2)],  # fee above what it gets
        [done, TradeOp("6", 1, "o1", 2, "taker", "USD", 1, "BTC", 1, 0)],  # out of order
        [TradeOp("8", 1, "o1", 2, "both", "USD", 1, "BTC", 1, 0)],
        [DoneOp("x", 2, "o1")],
    ]
    for ops in bad:
        await refused(
            r,
            "alice",
            ("INTERNAL", "INVALID_PARAM"),
            accounts.settle_entry(r, "alice", "BTC-USD", ops),
        )
    await refused(
        r,
        "alice",
        "INVALID_PARAM",
        accounts.credit(r, "alice", "alice", [CreditOp("1-0", 1, "alice", "t", "USD", 1)]),
    )
    await refused(
        r,
        "alice",
        "INTERNAL",
        accounts.credit(r, "alice", "bob", [CreditOp("1-0", 1, "carol", "t", "USD", 1)]),
    )
    assert (await accounts.settle_entry(r, "alice", "BTC-USD", [done])).ops == 1
    assert await accounts.balance(r, "alice", "USD") == Balance("USD", 70 * COIN, 0, 0)
    assert await accounts.holds(r, "alice") == []
