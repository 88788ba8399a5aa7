"""Helpers of the P2P tests (no tests here): a funded desk, ledger invariants.

``Ledger`` checks, per asset, that the sum over the given accounts of available +
held + escrow, plus credits in flight (``transfer_out`` entries of their streams
that the payee has not applied yet), equals what was deposited; and that every
seller's escrow is exactly what their open sell offers and active trades hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine import accounts, addresses
from engine.p2p import P2P
from engine.p2p_rules import ACTIVE, OfferSpec
from engine.seed import seed_defaults

COIN = 10**8
USD = 100  # cents


def spec(
    side: str = "sell",
    amount: int = COIN,
    *,
    asset: str = "BTC",
    price: int = 30_000 * USD,
    min_amount: int = COIN // 100,
    max_amount: int = COIN // 2,
    window: int = 15,
    fiat: str = "USD",
    methods: tuple[str, ...] = ("SEPA transfer",),
) -> OfferSpec:
    return OfferSpec(side, asset, fiat, price, amount, min_amount, max_amount, methods, window)  # type: ignore[arg-type]


def _pos(entry_id: str) -> tuple[int, int]:
    a, _, b = entry_id.partition("-")
    return int(a), int(b or 0)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@dataclass
class Ledger:
    redis: Any
    users: list[str]
    deposited: dict[str, int] = field(default_factory=dict)
    _n: int = 0
    _read: dict[str, str] = field(default_factory=dict)  # payer -> last entry read
    _pending: list[tuple[str, str, str, int, str]] = field(default_factory=list)

    async def fund(self, user: str, asset: str, amount: int) -> None:
        self._n += 1
        address = await addresses.deposit_address(self.redis, user, asset)
        await accounts.deposit(self.redis, f"dep-{self._n}", address, asset, amount)
        self.deposited[asset] = self.deposited.get(asset, 0) + amount

    async def in_flight(self) -> dict[str, int]:
        """Per asset: transfers debited from a payer not yet applied by the payee
        (streams are read incrementally across calls)."""
        for payer in self.users:
            stream = accounts.account_stream_key(payer)
            start = "(" + self._read[payer] if payer in self._read else "-"
            for entry_id, fields in await self.redis.xrange(stream, min=start):
                self._read[payer] = _s(entry_id)
                for ev in orjson.loads(fields[b"e"]):
                    if ev["e"] == "transfer_out":
                        self._pending.append(
                            (stream, ev["to"], ev["asset"], ev["amount"], _s(entry_id))
                        )
        out: dict[str, int] = {}
        still = []
        for stream, payee, asset, amount, entry_id in self._pending:
            cur = await self.redis.hget(accounts.account_keys(payee)[2], stream)
            if cur is None or _pos(_s(cur)) < _pos(entry_id):
                out[asset] = out.get(asset, 0) + amount
                still.append((stream, payee, asset, amount, entry_id))
        self._pending = still
        return out

    async def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for user in self.users:
            for b in await accounts.balances(self.redis, user):
                assert min(b.available, b.held, b.escrow) >= 0, (user, b)
                out[b.asset] = out.get(b.asset, 0) + b.total
        for asset, amount in (await self.in_flight()).items():
            out[asset] = out.get(asset, 0) + amount
        return out

    async def check(self, desk: P2P | None = None) -> None:
        """Conservation (and the escrow invariant when ``desk`` is given)."""
        totals = await self.totals()
        for asset, amount in self.deposited.items():
            assert totals.get(asset, 0) == amount, (asset, totals, self.deposited)
        if desk is not None:
            for user in self.users:
                await check_escrow(desk, user)


async def check_escrow(desk: P2P, user: str) -> None:
    """``user``'s escrow == their open/paused sell offers' amount + active trades as seller."""
    expected: dict[str, int] = {}
    for o in await desk.my_offers(user, limit=200):
        if o.side == "sell" and o.status != "CLOSED":
            expected[o.asset] = expected.get(o.asset, 0) + o.amount
    for t in await desk.my_trades(user, limit=200):
        if t.seller == user and t.status in ACTIVE:
            expected[t.asset] = expected.get(t.asset, 0) + t.amount
    for b in await accounts.balances(desk.redis, user):
        assert b.escrow == expected.get(b.asset, 0), (user, b, expected)


async def new_desk(redis: Any, users: Iterable[str], **kw: Any) -> tuple[P2P, Ledger]:
    """Seeded registry, a P2P desk, and a ledger over ``users`` (nothing funded)."""
    await seed_defaults(redis)
    return P2P(redis, **kw), Ledger(redis, list(users))


async def stream_events(
    redis: Any, user: str, kinds: set[str] | None = None
) -> list[dict[str, Any]]:
    """Events of ``user``'s account stream (optionally only some kinds), in order."""
    out = []
    for _, fields in await redis.xrange(accounts.account_stream_key(user)):
        for ev in orjson.loads(fields[b"e"]):
            if kinds is None or ev["e"] in kinds:
                out.append(ev)
    return out


async def dump_shard(redis: Any, user: str) -> dict[str, Any]:
    """Every key of the user's hash tag with its content, canonically (any type)."""
    out: dict[str, Any] = {}
    keys = sorted([_s(k) async for k in redis.scan_iter(match=f"{{u:{user}}}*", count=1000)])
    for key in keys:
        kind = _s(await redis.type(key))
        if kind == "hash":
            value: Any = sorted((_s(k), _s(v)) for k, v in (await redis.hgetall(key)).items())
        elif kind == "stream":
            value = [(_s(i), sorted(f.items())) for i, f in await redis.xrange(key)]
        elif kind == "zset":
            value = [(_s(m), s) for m, s in await redis.zrange(key, 0, -1, withscores=True)]
        elif kind == "list":
            value = [_s(v) for v in await redis.lrange(key, 0, -1)]
        else:
            value = _s(await redis.get(key))
        out[key] = value
    return out
