"""A plain-Python reference of the matching rules, written independently of the Lua.

It produces the same event stream as lua/10_market.lua for calls that need no
continuation (fewer fills than max_fills), so a hypothesis test can drive both with
random commands and compare trades, events and the final book.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class RefError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def fee(amount: int, bps: int) -> int:
    return -(-amount * bps // 10000)


@dataclass
class RefOrder:
    id: str
    u: str
    cid: str
    side: str
    type: str
    tif: str
    po: int
    stp: str
    price: int
    amount: int
    qb: int
    filled: int = 0
    cost: int = 0
    status: str = "NEW"
    arrival: int = 0
    capped: bool = False
    spent: bool = False  # a quote budget that buys no more lot
    msg: str = ""

    @property
    def rem(self) -> int:
        return self.amount - self.filled


@dataclass
class ReferenceMarket:
    tick: int
    lot: int
    min_size: int
    max_notional: int
    mult: int
    maker_fee_bps: int
    taker_fee_bps: int
    status: str = "TRADING"
    seq: int = 1  # the "market" event of its creation
    tid: int = 0

    def __post_init__(self) -> None:
        self.orders: dict[str, RefOrder] = {}
        self.book: dict[str, list[RefOrder]] = {"buy": [], "sell": []}
        self.cids: dict[tuple[str, str], str] = {}

    # -- book ------------------------------------------------------------------
    def _sort(self, side: str) -> None:
        sign = -1 if side == "buy" else 1
        self.book[side].sort(key=lambda o: (sign * o.price, o.arrival))

    def depth(self) -> dict[str, list[tuple[int, int]]]:
        out: dict[str, list[tuple[int, int]]] = {}
        for side in ("buy", "sell"):
            levels: dict[int, int] = {}
            for o in self.book[side]:
                levels[o.price] = levels.get(o.price, 0) + o.rem
            out[side] = sorted(levels.items(), key=lambda kv: -kv[0] if side == "buy" else kv[0])
        return out

    # -- events ----------------------------------------------------------------
    def _emit(self, events: list[dict[str, Any]], now: int, body: dict[str, Any]) -> None:
        self.seq += 1
        events.append({"seq": self.seq, "ts": now, **body})

    def _done(
        self, events: list[dict[str, Any]], now: int, o: RefOrder, reason: str, msg: str
    ) -> None:
        self._emit(
            events,
            now,
            {
                "e": "done",
                "id": o.id,
                "u": o.u,
                "side": o.side,
                "reason": reason,
                "msg": msg,
                "amount": o.amount,
                "filled": o.filled,
                "cost": o.cost,
            },
        )

    def _levels(
        self,
        events: list[dict[str, Any]],
        now: int,
        touched: list[tuple[str, int]],
        before: dict[str, dict[int, int]],
    ) -> None:
        after = {s: dict(v) for s, v in self.depth().items()}
        for side, price in touched:
            old = before[side].get(price, 0)
            new = after[side].get(price, 0)
            if new != old:
                self._emit(events, now, {"e": "level", "side": side, "price": price, "size": new})

    # -- commands --------------------------------------------------------------
    def place(
        self,
        oid: str,
        u: str,
        side: str,
        type_: str,
        tif: str,
        po: bool,
        price: int,
        amount: int,
        qb: int,
        stp: str,
        cid: str,
        now: int,
    ) -> tuple[str, list[dict[str, Any]]]:
        if oid in self.orders:
            if self.orders[oid].u != u:
                raise RefError("ORDER_ID_TAKEN")
            return "replay", []
        if self.status != "TRADING":
            raise RefError("MARKET_NOT_TRADING")
        if type_ == "limit":
            if price == 0 or amount == 0:
                raise RefError("INVALID_PARAM")
            if price % self.tick:
                raise RefError("BAD_PRECISION")
        else:
            if tif == "GTC":
                tif = "IOC"
            if side == "sell" and (qb or not amount):
                raise RefError("INVALID_PARAM")
            if side == "buy" and not qb:
                raise RefError("INVALID_PARAM")
        if amount:
            if amount % self.lot:
                raise RefError("BAD_PRECISION")
            if amount < self.min_size:
                raise RefError("INVALID_PARAM")
        if (
            type_ == "limit"
            and (price // self.tick) * (amount // self.lot) * self.mult > self.max_notional
        ):
            raise RefError("INVALID_PARAM")
        if po and tif != "GTC":
            raise RefError("INVALID_PARAM")
        if cid and (u, cid) in self.cids:
            return "duplicate", []
        if cid:
            self.cids[(u, cid)] = oid
        events: list[dict[str, Any]] = []
        t = RefOrder(oid, u, cid, side, type_, tif, int(po), stp, price, amount, qb)
        self.orders[oid] = t
        self._emit(
            events,
            now,
            {
                "e": "accepted",
                "id": oid,
                "u": u,
                "cid": cid,
                "side": side,
                "type": type_,
                "tif": tif,
                "po": int(po),
                "stp": stp,
                "price": price,
                "amount": amount,
                "qb": qb,
            },
        )
        t.arrival = self.seq
        opp = "sell" if side == "buy" else "buy"
        before = {s: dict(v) for s, v in self.depth().items()}
        touched: list[tuple[str, int]] = []
        best = self.book[opp][0].price if self.book[opp] else None
        if po and best is not None and self._crosses(t, best):
            t.status = "REJECTED"
            self._done(events, now, t, "REJECTED", "POST_ONLY_WOULD_TAKE")
            return "new", events
        if tif == "FOK" and not self._fok_fillable(t):
            t.status = "EXPIRED"
            self._done(events, now, t, "EXPIRED", "FOK")
            return "new", events
        if best is not None and self._crosses(t, best):
            self._match(t, events, now, touched)
        self._finish(t, events, now, touched, before)
        return "new", events

    def _crosses(self, t: RefOrder, price: int) -> bool:
        if t.type == "market":
            return True
        return price <= t.price if t.side == "buy" else price >= t.price

    def _taker_done(self, t: RefOrder) -> bool:
        return (t.amount > 0 and t.filled >= t.amount) or (t.qb > 0 and t.cost >= t.qb)

    def _fok_fillable(self, t: RefOrder) -> bool:
        need, cost = t.amount, 0
        for m in self.book["sell" if t.side == "buy" else "buy"]:
            if not self._crosses(t, m.price):
                return False
            if m.u == t.u:
                if t.stp != "cancel_oldest":
                    return False
                continue
            take = min(m.rem, need)
            if t.qb:  # a market buy by amount: within its budget (price protection)
                cost += (m.price // self.tick) * (take // self.lot) * self.mult
                if cost > t.qb:
                    return False
            need -= take
            if need <= 0:
                return True
        return False

    def _match(
        self, t: RefOrder, events: list[dict[str, Any]], now: int, touched: list[tuple[str, int]]
    ) -> None:
        opp = "sell" if t.side == "buy" else "buy"
        book = self.book[opp]
        while book and not self._taker_done(t) and t.status != "CANCELED":
            m = book[0]
            if not self._crosses(t, m.price):
                return
            if (opp, m.price) not in touched:
                touched.append((opp, m.price))
            if m.u == t.u:
                if t.stp in ("cancel_oldest", "cancel_both"):
                    m.status = "CANCELED"
                    book.pop(0)
                    self._done(events, now, m, "CANCELED", "STP")
                if t.stp in ("cancel_newest", "cancel_both"):
                    t.status, t.msg = "CANCELED", "STP"
                    return
                continue
            q = m.rem
            if t.amount:
                q = min(q, t.amount - t.filled)
            if t.qb:
                per_lot = (m.price // self.tick) * self.mult
                affordable = (t.qb - t.cost) // per_lot * self.lot
                if affordable <= q:  # the budget, not the book, ends it
                    t.spent = True
                q = min(q, affordable)
            if q <= 0:
                return
            quote = (m.price // self.tick) * (q // self.lot) * self.mult
            if t.cost + quote > self.max_notional:
                t.capped = True
                return
            if t.side == "buy":
                mfee, tfee = fee(quote, self.maker_fee_bps), fee(q, self.taker_fee_bps)
            else:
                mfee, tfee = fee(q, self.maker_fee_bps), fee(quote, self.taker_fee_bps)
            self.tid += 1
            m.filled += q
            m.cost += quote
            t.filled += q
            t.cost += quote
            self._emit(
                events,
                now,
                {
                    "e": "trade",
                    "tid": self.tid,
                    "price": m.price,
                    "size": q,
                    "quote": quote,
                    "side": t.side,
                    "maker": m.id,
                    "taker": t.id,
                    "mu": m.u,
                    "tu": t.u,
                    "mfee": mfee,
                    "tfee": tfee,
                    "mfilled": m.filled,
                    "mcost": m.cost,
                    "mamount": m.amount,
                },
            )
            if m.rem == 0:
                m.status = "FILLED"
                book.pop(0)
                self._done(events, now, m, "FILLED", "")
            else:
                m.status = "PARTIALLY_FILLED"

    def _finish(
        self,
        t: RefOrder,
        events: list[dict[str, Any]],
        now: int,
        touched: list[tuple[str, int]],
        before: dict[str, dict[int, int]],
    ) -> None:
        if t.status == "CANCELED":
            self._done(events, now, t, "CANCELED", t.msg)
        elif self._taker_done(t):
            t.status = "FILLED"
            self._done(events, now, t, "FILLED", "")
        elif t.capped:
            t.status = "EXPIRED"
            self._done(events, now, t, "EXPIRED", "MAX_NOTIONAL")
        elif t.type == "market":
            if t.amount == 0 and t.filled > 0 and t.spent:
                t.status = "FILLED"
                self._done(events, now, t, "FILLED", "")
            else:
                t.status = "EXPIRED"
                self._done(events, now, t, "EXPIRED", "NO_LIQUIDITY")
        elif t.tif == "GTC":
            t.status = "PARTIALLY_FILLED" if t.filled else "NEW"
            self.book[t.side].append(t)
            self._sort(t.side)
            touched.append((t.side, t.price))
        else:
            t.status = "EXPIRED"
            self._done(events, now, t, "EXPIRED", t.tif)
        self._levels(events, now, touched, before)

    def _open(self, oid: str, u: str) -> RefOrder:
        o = self.orders.get(oid)
        if o is None or o.u != u or o not in self.book[o.side]:
            raise RefError("UNKNOWN_ORDER")
        return o

    def cancel(self, oid: str, u: str, now: int) -> list[dict[str, Any]]:
        if self.status == "HALT":
            raise RefError("MARKET_NOT_TRADING")
        o = self._open(oid, u)
        return self.cancel_many(u, [o.id], now)

    def cancel_many(self, u: str, oids: list[str], now: int) -> list[dict[str, Any]]:
        if self.status == "HALT":
            raise RefError("MARKET_NOT_TRADING")
        before = {s: dict(v) for s, v in self.depth().items()}
        events: list[dict[str, Any]] = []
        touched: list[tuple[str, int]] = []
        for oid in oids:
            o = self.orders.get(oid)
            if o is None or o.u != u or o not in self.book[o.side]:
                continue
            self.book[o.side].remove(o)
            o.status = "CANCELED"
            if (o.side, o.price) not in touched:
                touched.append((o.side, o.price))
            self._done(events, now, o, "CANCELED", "USER")
        self._levels(events, now, touched, before)
        return events

    def reduce(self, oid: str, u: str, new_amount: int, now: int) -> list[dict[str, Any]]:
        if new_amount <= 0:
            raise RefError("INVALID_PARAM")
        if self.status == "HALT":
            raise RefError("MARKET_NOT_TRADING")
        o = self._open(oid, u)
        if new_amount % self.lot:
            raise RefError("BAD_PRECISION")
        if not o.filled < new_amount < o.amount:
            raise RefError("INVALID_PARAM")
        before = {s: dict(v) for s, v in self.depth().items()}
        events: list[dict[str, Any]] = []
        o.amount = new_amount
        self._emit(
            events,
            now,
            {
                "e": "reduced",
                "id": o.id,
                "u": o.u,
                "side": o.side,
                "price": o.price,
                "amount": new_amount,
                "filled": o.filled,
            },
        )
        self._levels(events, now, [(o.side, o.price)], before)
        return events
