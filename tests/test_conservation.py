"""Conservation of money, checked after EVERY step of a hypothesis state machine.

Steps mix deposits (with replays), withdrawals (requested, completed, rejected),
transfers, holds aborted by the facade, orders of a synthetic market (entries
written as ``mkt_place`` would: rests, crosses with price improvement, partial
fills, cancels, reductions), real orders through the ``engine.exchange`` facade
(limit / market / IOC / FOK, cancels), and settler passes. Invariants, per asset:

- sum over all accounts (fee account included) of available + held + escrow, plus
  transfers debited but not yet credited == deposits - completed withdrawals;
- no balance field is ever negative;
- each user's held == their hold records + their pending withdrawals.
"""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest
import redis.asyncio as aredis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from engine import accounts, addresses, registry
from engine.exchange import Exchange
from engine.functions import ensure_loaded
from engine.settlement import FEES_USER
from engine.types import EngineError, Market, OrderRequest
from tests.test_accounts_support import BTC_USD, COIN, SyntheticMarket, setup_assets
from workers.settler import Settler

USERS = ["alice", "bob", "carol"]
ASSETS = ["BTC", "ETH", "USD"]
ETH_USD = Market(
    id="ETH-USD", base="ETH", quote="USD", base_scale=8, quote_scale=8, tick=1_000_000,
    lot=1_000, min_size=1_000, max_notional=10**15, maker_fee_bps=5, taker_fee_bps=25,
)  # fmt: skip
TICK, LOT = 1_000_000, 1_000

users = st.sampled_from(USERS)
assets = st.sampled_from(ASSETS)
ids = st.integers(min_value=0, max_value=7)  # small pools: replays happen
sides = st.sampled_from(["buy", "sell"])
prices = st.integers(min_value=100, max_value=400).map(lambda d: d * 100 * TICK)  # whole dollars
lots = st.integers(min_value=1, max_value=200_000).map(lambda n: n * LOT)


def amount_of(kind: str, n: int, asset: str) -> int:
    """Replays reuse the parameters of the first call (same id -> same amount)."""
    base = {"USD": 20_000 * COIN, "BTC": 2 * COIN, "ETH": 10 * COIN}[asset]
    return base * (n + 1) // (3 if kind == "w" else 1)


def _pos(entry_id: str) -> tuple[int, int]:
    a, _, b = entry_id.partition("-")
    return int(a), int(b or 0)


class Conservation(RuleBasedStateMachine):
    backend = "fake"
    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.redis: Any = self.run(self._connect())
        self.deposited = dict.fromkeys(ASSETS, 0)
        self.withdrawn = dict.fromkeys(ASSETS, 0)
        self.deposits: dict[tuple[str, int], str] = {}  # (asset, n) -> user
        self.pending: dict[str, tuple[str, str, int]] = {}  # wid -> (user, asset, amount)
        self.wd_owner: dict[str, str] = {}
        self.transfers: list[tuple[str, str, str, int, str]] = []  # payer payee asset amount outbox
        self.synthetic: list[Any] = []  # open synthetic orders

    async def _connect(self) -> Any:
        if self.backend == "fake":
            client: Any = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
        else:
            client = aredis.Redis.from_url(self.url)
            await client.flushall()
        await ensure_loaded(client)
        await setup_assets(client)
        await registry.create_market(client, BTC_USD, 1)
        self.mkt = SyntheticMarket(client, ETH_USD)
        await self.mkt.create()
        self.exchange = Exchange(client)
        self.settler = Settler(client, publish=False)
        return client

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.exchange.close())
        self.run(self.redis.aclose())
        self.loop.close()

    @initialize()
    def fund_everyone(self) -> None:
        for user in USERS:
            for asset in ASSETS:
                self.deposit(user, asset, 0)

    # -- wallet ------------------------------------------------------------------

    @rule(user=users, asset=assets, n=ids)
    def deposit(self, user: str, asset: str, n: int) -> None:
        owner = self.deposits.setdefault((asset, n), user)  # an id belongs to one address
        address = self.run(addresses.deposit_address(self.redis, owner, asset))
        amount = amount_of("d", n, asset)
        result = self.run(accounts.deposit(self.redis, f"d{asset}{n}", address, asset, amount))
        if not result.replay:
            self.deposited[asset] += amount

    @rule(user=users, asset=assets, n=ids)
    def request_withdrawal(self, user: str, asset: str, n: int) -> None:
        wid, amount = f"w{asset}{n}", amount_of("w", n, asset)
        try:
            result = self.run(
                accounts.request_withdrawal(self.redis, user, wid, asset, amount, "ext1")
            )
        except EngineError as exc:
            assert exc.code in ("INSUFFICIENT_FUNDS", "INVALID_PARAM"), exc
            assert exc.code == "INSUFFICIENT_FUNDS" or self.wd_owner.get(wid, user) != user
            return
        self.wd_owner.setdefault(wid, user)
        if not result.replay:
            self.pending[wid] = (user, asset, amount)

    @precondition(lambda self: self.pending)
    @rule(data=st.data(), complete=st.booleans())
    def finish_withdrawal(self, data: st.DataObject, complete: bool) -> None:
        wid = data.draw(st.sampled_from(sorted(self.pending)))
        call = accounts.complete_withdrawal if complete else accounts.reject_withdrawal
        assert not self.run(call(self.redis, wid)).replay
        _, asset, amount = self.pending.pop(wid)
        if complete:
            self.withdrawn[asset] += amount
        with pytest.raises(EngineError):  # the other outcome is refused from now on
            other = accounts.reject_withdrawal if complete else accounts.complete_withdrawal
            self.run(other(self.redis, wid))

    @rule(payer=users, payee=users, asset=assets, n=ids)
    def transfer(self, payer: str, payee: str, asset: str, n: int) -> None:
        to = self.run(addresses.deposit_address(self.redis, payee, asset))
        amount = amount_of("t", n, asset) // 7
        try:
            t = self.run(accounts.transfer(self.redis, payer, f"t{asset}{n}", asset, amount, to))
        except EngineError as exc:
            assert exc.code in ("INSUFFICIENT_FUNDS", "INVALID_PARAM"), exc
            return
        assert payer != payee
        if not t.replay:
            self.transfers.append((payer, payee, asset, amount, t.outbox_id))

    @rule(user=users, asset=assets)
    def aborted_hold(self, user: str, asset: str) -> None:
        """The facade holds, the market refuses, the facade releases."""
        try:
            self.run(accounts.hold(self.redis, user, "abort1", "BTC-USD", asset, COIN))
        except EngineError as exc:
            assert exc.code == "INSUFFICIENT_FUNDS"
            return
        assert self.run(accounts.release(self.redis, user, "abort1")) == COIN

    # -- synthetic market (entries as mkt_place would write them) ---------------------

    @rule(user=users, side=sides, price=prices, size=lots)
    def synthetic_rest(self, user: str, side: str, price: int, size: int) -> None:
        order = self.run(self.mkt.hold(user, side, price, size))
        if order is not None:
            self.run(self.mkt.rest(order))
            self.synthetic.append(order)

    @precondition(lambda self: self.synthetic)
    @rule(data=st.data(), user=users, improve=st.integers(0, 50), size=lots)
    def synthetic_take(self, data: st.DataObject, user: str, improve: int, size: int) -> None:
        maker = data.draw(st.sampled_from(self.synthetic))
        side = "buy" if maker.side == "sell" else "sell"
        limit = maker.price + (improve if side == "buy" else -improve) * 100 * TICK
        taker = self.run(self.mkt.hold(user, side, max(limit, TICK), size))
        if taker is None:
            return
        self.run(self.mkt.take(taker, maker, min(size, maker.amount - maker.filled)))
        if not maker.open:
            self.synthetic.remove(maker)

    @precondition(lambda self: self.synthetic)
    @rule(data=st.data())
    def synthetic_cancel(self, data: st.DataObject) -> None:
        order = data.draw(st.sampled_from(self.synthetic))
        self.run(self.mkt.cancel(order))
        self.synthetic.remove(order)

    @precondition(lambda self: any(o.amount - o.filled >= 2 * LOT for o in self.synthetic))
    @rule(data=st.data())
    def synthetic_reduce(self, data: st.DataObject) -> None:
        order = data.draw(
            st.sampled_from([o for o in self.synthetic if o.amount - o.filled >= 2 * LOT])
        )
        left = data.draw(st.integers(1, (order.amount - order.filled) // LOT - 1))
        self.run(self.mkt.reduce(order, order.filled + left * LOT))

    # -- real orders through the facade ------------------------------------------------

    @rule(
        user=users,
        side=sides,
        kind=st.sampled_from(["GTC", "IOC", "FOK", "market"]),
        price=prices,
        size=lots,
    )
    def place(self, user: str, side: str, kind: str, price: int, size: int) -> None:
        if kind == "market":
            req = OrderRequest(market="BTC-USD", side=side, type="market", amount=size)  # type: ignore[arg-type]
        else:
            req = OrderRequest(market="BTC-USD", side=side, type="limit", amount=size,  # type: ignore[arg-type]
                               price=price, time_in_force=kind)  # type: ignore[arg-type]  # fmt: skip
        try:
            self.run(self.exchange.place_order(user, req))
        except EngineError as exc:
            assert exc.code in ("INSUFFICIENT_FUNDS", "INVALID_PARAM", "POST_ONLY_WOULD_TAKE"), exc

    @rule(user=users)
    def cancel_all(self, user: str) -> None:
        self.run(self.exchange.cancel_all(user, "BTC-USD"))

    # -- settlement --------------------------------------------------------------------

    @rule()
    def settle(self) -> None:
        self.run(self.settler.settle_once())

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def money_is_conserved(self) -> None:
        self.run(self._check())

    async def _check(self) -> None:
        r = self.redis
        total = dict.fromkeys(ASSETS, 0)
        for user in [*USERS, FEES_USER]:
            held: dict[str, int] = {}
            for h in await accounts.holds(r, user):
                held[h.asset] = held.get(h.asset, 0) + h.amount
            for wuser, asset, amount in self.pending.values():
                if wuser == user:
                    held[asset] = held.get(asset, 0) + amount
            for b in await accounts.balances(r, user):
                assert min(b.available, b.held, b.escrow) >= 0, (user, b)
                assert b.held == held.get(b.asset, 0), (user, b, held)
                total[b.asset] += b.total
        for payer, payee, asset, amount, outbox in self.transfers:
            cur = await r.hget(f"{{u:{payee}}}:cur", f"{{u:{payer}}}:ev")
            if cur is None or _pos(cur.decode()) < _pos(outbox):
                total[asset] += amount  # in flight
        for asset in ASSETS:
            assert total[asset] == self.deposited[asset] - self.withdrawn[asset], asset


def _run(backend: str, url: str = "", examples: int = 60) -> None:
    machine = type("Machine", (Conservation,), {"backend": backend, "url": url})
    machine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    machine.TestCase().runTest()


def test_conservation_fake() -> None:
    _run("fake")


def test_conservation_real(valkey_url: str) -> None:
    _run("real", valkey_url)


@pytest.mark.slow
def test_conservation_long(valkey_url: str) -> None:
    _run("real", valkey_url, examples=300)
