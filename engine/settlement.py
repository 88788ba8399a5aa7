"""Pure settlement logic: market stream entries -> per-account balance operations.

No I/O here. The settler reads ``{m:X}:ev`` entries, turns each into the operations
of every account it concerns with :func:`ops_for_entry`, and applies them through
``engine.accounts.settle_entry`` (Lua ``acct_settle``). Event formats are those of
docs/internals.md ("Market events").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from engine.types import Balance
from engine.units import format_amount

FEES_USER = "fees"


@dataclass(frozen=True, slots=True)
class MarketAssets:
    """What settlement needs to know of a market (fields that never change)."""

    id: str
    base: str
    quote: str
    base_scale: int

    def notional(self, price: int, size: int) -> int:
        """Quote units of ``size`` base units at ``price`` (exact by market construction)."""
        return price * size // 10**self.base_scale


@dataclass(frozen=True, slots=True)
class TradeOp:
    """A fill: ``paid`` leaves the order's hold, ``got - fee`` becomes available."""

    pos: str
    ts: int
    order_id: str
    trade_id: int
    liquidity: str  # maker | taker
    held_asset: str
    paid: int
    recv_asset: str
    got: int
    fee: int

    def wire(self) -> list[Any]:
        return ["t", self.pos, self.ts, self.order_id, self.trade_id, self.liquidity,
                self.held_asset, self.paid, self.recv_asset, self.got, self.fee]  # fmt: skip


@dataclass(frozen=True, slots=True)
class FeeOp:
    """A fee collected by the fee account."""

    pos: str
    ts: int
    trade_id: int
    asset: str
    amount: int

    def wire(self) -> list[Any]:
        return ["f", self.pos, self.ts, self.trade_id, self.asset, self.amount]


@dataclass(frozen=True, slots=True)
class DoneOp:
    """The order is final: release what is left of its hold."""

    pos: str
    ts: int
    order_id: str

    def wire(self) -> list[Any]:
        return ["d", self.pos, self.ts, self.order_id]


@dataclass(frozen=True, slots=True)
class ReduceOp:
    """The order was reduced: release its hold down to ``keep``."""

    pos: str
    ts: int
    order_id: str
    keep: int

    def wire(self) -> list[Any]:
        return ["r", self.pos, self.ts, self.order_id, self.keep]


@dataclass(frozen=True, slots=True)
class CreditOp:
    """An incoming transfer from ``payer``'s outbox entry ``pos``."""

    pos: str
    ts: int
    payer: str
    transfer_id: str
    asset: str
    amount: int

    def wire(self) -> list[Any]:
        return ["c", self.pos, self.ts, self.payer, self.transfer_id, self.asset, self.amount]


SettleOp = TradeOp | FeeOp | DoneOp | ReduceOp
AnyOp = SettleOp | CreditOp


def encode_ops(ops: Iterable[AnyOp]) -> bytes:
    """The JSON the Lua side decodes (an array of arrays)."""
    return orjson.dumps([op.wire() for op in ops])


# the event kinds ops_for_entry turns into ops, as they appear in an entry's JSON
_SETTLED_KINDS = ('"trade"', '"done"', '"reduced"', '"rested"')
_SETTLED_KINDS_B = tuple(k.encode() for k in _SETTLED_KINDS)


def may_settle(raw: bytes | str) -> bool:
    """Whether the JSON events of an entry may concern an account: False only when no
    ``trade`` / ``done`` / ``reduced`` / ``rested`` string appears in it, so that
    :func:`ops_for_entry` would return nothing (an order accepted and resting, a level).
    Lets the settler skip parsing most entries of resting orders."""
    if isinstance(raw, bytes):
        return any(k in raw for k in _SETTLED_KINDS_B)
    return any(k in raw for k in _SETTLED_KINDS)


def ops_for_entry(
    m: MarketAssets, last_seq: int, events: list[dict[str, Any]]
) -> dict[str, list[SettleOp]]:
    """Group the events of one market stream entry by the account they concern.

    Every op carries the entry's last seq as its position, so the account applies
    the entry once (``{u:U}:cur[{m:X}:ev]``).
    """
    pos = str(last_seq)
    out: dict[str, list[SettleOp]] = {}

    def add(user: str, op: SettleOp) -> None:
        out.setdefault(user, []).append(op)

    # limit buys accepted in this entry: user, price, amount, filled as taker, last ts.
    # One that matched at better prices and is not done here (it rests) keeps only the
    # hold of its remainder at its limit price: the price improvement is released now,
    # not when the order ends (``locked`` = remaining x price, as Binance shows it).
    # After a continued match (more than 200 fills) the engine says so with `rested`.
    improved: dict[str, list[Any]] = {}
    for ev in events:
        kind = ev.get("e")
        ts = int(ev.get("ts", 0))
        if kind == "trade":
            size, quote, tid = int(ev["size"]), int(ev["quote"]), int(ev["tid"])
            taker_buys = ev["side"] == "buy"
            for user, oid, liq, fee, buys in (
                (ev["mu"], ev["maker"], "maker", int(ev["mfee"]), not taker_buys),
                (ev["tu"], ev["taker"], "taker", int(ev["tfee"]), taker_buys),
            ):
                if buys:
                    op = TradeOp(pos, ts, oid, tid, liq, m.quote, quote, m.base, size, fee)
                else:
                    op = TradeOp(pos, ts, oid, tid, liq, m.base, size, m.quote, quote, fee)
                add(user, op)
                if fee > 0:
                    add(FEES_USER, FeeOp(pos, ts, tid, op.recv_asset, fee))
            taker = improved.get(ev["taker"])
            if taker is not None:
                taker[3] += size
                taker[4] = ts
        elif kind == "accepted":
            if ev["side"] == "buy" and ev["type"] == "limit":
                improved[ev["id"]] = [ev["u"], int(ev["price"]), int(ev["amount"]), 0, ts]
        elif kind == "done":
            add(ev["u"], DoneOp(pos, ts, ev["id"]))
            improved.pop(ev["id"], None)
        elif kind in ("reduced", "rested") and "filled" in ev and "price" in ev:
            left = int(ev["amount"]) - int(ev["filled"])
            keep = m.notional(int(ev["price"]), left) if ev["side"] == "buy" else left
            add(ev["u"], ReduceOp(pos, ts, ev["id"], keep))
        # level / market / reduced without order state: nothing to move
        # (a reduced hold is then released in full by the order's "done").
    for oid, (user, price, amount, filled, ts) in improved.items():
        if filled > 0:
            add(user, ReduceOp(pos, ts, oid, m.notional(price, amount - filled)))
    return out


def balance_push(b: Balance, scale: int) -> dict[str, str]:
    """PROTOCOL.md private ``balances`` push of one asset."""
    return {
        "channel": "balances",
        "asset": b.asset,
        "free": format_amount(scale, b.available),
        "locked": format_amount(scale, b.locked),
        "total": format_amount(scale, b.total),
    }
