"""P2P rules (pure, no I/O): limits, the trade state machine, fiat amounts, records.

The state machine is enforced by ``lua/30_p2p.lua`` (``P2P_RULES``); ``RULES`` here is
the same table for callers and documentation, and a test checks that both agree.

    PENDING --paid (buyer)--> PAID --dispute (buyer|seller)--> DISPUTED
    PENDING|PAID --release (seller)--> RELEASED
    PENDING --cancel (buyer)--> CANCELLED        PENDING --expire (system)--> EXPIRED
    DISPUTED --resolve_release (admin)--> RELEASED
    DISPUTED --resolve_refund (admin)--> REFUNDED
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import orjson

from engine.types import EngineError
from engine.units import format_amount, parse_amount

OfferSide = Literal["sell", "buy"]
OfferStatus = Literal["OPEN", "PAUSED", "CLOSED"]
TradeStatus = Literal["PENDING", "PAID", "DISPUTED", "RELEASED", "CANCELLED", "EXPIRED", "REFUNDED"]
Action = Literal[
    "paid", "release", "cancel", "expire", "dispute", "resolve_release", "resolve_refund"
]
Party = Literal["buyer", "seller", "admin", "system"]
Role = Literal["user", "admin"]

FIAT_SCALE = 2  # fiat prices and amounts are integer cents
MAX_INT = 2**53 - 1
MAX_METHODS = 5
MAX_METHOD_CHARS = 50
MAX_TEXT_CHARS = 500  # messages and dispute reasons
MAX_WINDOW_MIN = 1440
SYSTEM = "system"  # actor id of the expiry job

ACTIVE: frozenset[str] = frozenset({"PENDING", "PAID", "DISPUTED"})
FINAL: frozenset[str] = frozenset({"RELEASED", "CANCELLED", "EXPIRED", "REFUNDED"})
RETURNED: frozenset[str] = frozenset({"CANCELLED", "EXPIRED", "REFUNDED"})  # escrow back


@dataclass(frozen=True, slots=True)
class Rule:
    sources: frozenset[str]
    target: str
    by: frozenset[str]


RULES: dict[str, Rule] = {
    "paid": Rule(frozenset({"PENDING"}), "PAID", frozenset({"buyer"})),
    "release": Rule(frozenset({"PENDING", "PAID"}), "RELEASED", frozenset({"seller"})),
    "cancel": Rule(frozenset({"PENDING"}), "CANCELLED", frozenset({"buyer"})),
    "expire": Rule(frozenset({"PENDING"}), "EXPIRED", frozenset({"system"})),
    "dispute": Rule(frozenset({"PAID"}), "DISPUTED", frozenset({"buyer", "seller"})),
    "resolve_release": Rule(frozenset({"DISPUTED"}), "RELEASED", frozenset({"admin"})),
    "resolve_refund": Rule(frozenset({"DISPUTED"}), "REFUNDED", frozenset({"admin"})),
}


def refusal(action: str, status: str, party: str | None) -> str | None:
    """The error code an action gets from a party in a state, or None if allowed.

    ``party`` None is a stranger (neither side nor admin): the trade looks unknown.
    Time rules (payment window) and replays are left to the caller.
    """
    rule = RULES[action]
    if party is None:
        return "UNKNOWN_ORDER"
    if party not in rule.by:
        return "FORBIDDEN"
    if status not in rule.sources:
        return "INVALID_PARAM"
    return None


# -- validation and units ----------------------------------------------------------

_FIAT_RE = re.compile(r"^[A-Z]{3}\Z")


def check_fiat(code: str) -> str:
    if not isinstance(code, str) or not _FIAT_RE.match(code):
        raise EngineError("INVALID_PARAM", "fiat must be a 3-letter currency code like USD")
    return code


def parse_fiat(text: str, what: str = "price") -> int:
    """A fiat decimal string with at most 2 decimals -> integer cents."""
    value = parse_amount(FIAT_SCALE, text, what)
    if not 0 < value <= MAX_INT:
        raise EngineError("INVALID_PARAM", f"{what} must be positive")
    return value


def format_fiat(cents: int) -> str:
    return format_amount(FIAT_SCALE, cents)


def fiat_amount(price: int, amount: int, scale: int) -> int:
    """Cents the buyer pays for ``amount`` units at ``price`` cents per whole unit,
    rounded up to the cent (exact integers)."""
    return -(-price * amount // 10**scale)


def clean_text(text: object, what: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Printable text, stripped, 1..max_chars characters."""
    if not isinstance(text, str):
        raise EngineError("INVALID_PARAM", f"{what} must be a string")
    text = text.strip()
    if not text or len(text) > max_chars:
        raise EngineError("INVALID_PARAM", f"{what} must be 1..{max_chars} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") and c != "\n" for c in text):
        raise EngineError("INVALID_PARAM", f"{what} contains control characters")
    return text


def check_methods(methods: object) -> tuple[str, ...]:
    if not isinstance(methods, list | tuple) or not 1 <= len(methods) <= MAX_METHODS:
        raise EngineError("INVALID_PARAM", f"payment_methods must list 1..{MAX_METHODS} methods")
    out = tuple(clean_text(m, "payment method", MAX_METHOD_CHARS) for m in methods)
    if any("\n" in m for m in out):
        raise EngineError("INVALID_PARAM", "payment method must be one line")
    # the same method twice (letter case and outer spaces aside) is a client mistake,
    # refused rather than silently merged, as any other malformed field
    if len({m.casefold() for m in out}) != len(out):
        raise EngineError("INVALID_PARAM", "payment_methods lists a method twice")
    return out


def check_units(value: object, what: str, *, allow_zero: bool = False) -> int:
    if type(value) is not int or value < (0 if allow_zero else 1) or value > MAX_INT:
        raise EngineError("INVALID_PARAM", f"{what} must be a positive integer")
    return value


def check_window(minutes: object) -> int:
    if type(minutes) is not int or not 1 <= minutes <= MAX_WINDOW_MIN:
        raise EngineError("INVALID_PARAM", f"payment_window must be 1..{MAX_WINDOW_MIN} minutes")
    return minutes


@dataclass(frozen=True, slots=True)
class OfferSpec:
    """A new offer, in integers: asset minimal units, fiat cents per whole unit."""

    side: OfferSide
    asset: str
    fiat: str
    price: int
    amount: int
    min_amount: int
    max_amount: int
    payment_methods: tuple[str, ...]
    payment_window: int  # minutes

    def checked(self) -> OfferSpec:
        if self.side not in ("sell", "buy"):
            raise EngineError("INVALID_PARAM", "side must be sell or buy")
        check_fiat(self.fiat)
        check_units(self.price, "price")
        check_units(self.amount, "amount")
        check_units(self.min_amount, "min_amount")
        check_units(self.max_amount, "max_amount")
        if self.min_amount > self.max_amount:
            raise EngineError("INVALID_PARAM", "min_amount exceeds max_amount")
        if self.min_amount > self.amount:
            raise EngineError("INVALID_PARAM", "min_amount exceeds amount")
        check_window(self.payment_window)
        methods = check_methods(list(self.payment_methods))
        return OfferSpec(
            self.side, self.asset, self.fiat, self.price, self.amount, self.min_amount,
            self.max_amount, methods, self.payment_window,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class OfferChanges:
    """An edit: None leaves a field unchanged. ``amount`` is the new amount left to
    trade (0 allowed); ``status`` pauses (PAUSED) or resumes (OPEN)."""

    status: Literal["OPEN", "PAUSED"] | None = None
    amount: int | None = None
    price: int | None = None
    min_amount: int | None = None
    max_amount: int | None = None
    payment_methods: tuple[str, ...] | None = None
    payment_window: int | None = None

    def argv(self) -> list[str | int]:
        """Lua arguments 2..8 of ``p2p_offer_update`` ('' = unchanged)."""
        if self.status not in (None, "OPEN", "PAUSED"):
            raise EngineError("INVALID_PARAM", "status must be OPEN or PAUSED")
        if self.amount is not None:
            check_units(self.amount, "amount", allow_zero=True)
        for value, what in (
            (self.price, "price"),
            (self.min_amount, "min_amount"),
            (self.max_amount, "max_amount"),
        ):
            if value is not None:
                check_units(value, what)
        if self.payment_window is not None:
            check_window(self.payment_window)
        methods = ""
        if self.payment_methods is not None:
            methods = encode_methods(check_methods(list(self.payment_methods)))

        def opt(v: int | None) -> str | int:
            return "" if v is None else v

        return [
            self.status or "", opt(self.amount), opt(self.price), opt(self.min_amount),
            opt(self.max_amount), methods, opt(self.payment_window),
        ]  # fmt: skip


def encode_methods(methods: tuple[str, ...]) -> str:
    return orjson.dumps(list(methods)).decode()


# -- records -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    id: str
    owner: str
    side: OfferSide
    asset: str
    fiat: str
    price: int  # cents per whole unit
    amount: int  # left to trade (escrowed for a sell offer)
    locked: int  # in trades in progress
    filled: int  # released to buyers
    min_amount: int
    max_amount: int
    payment_methods: tuple[str, ...]
    payment_window: int
    status: OfferStatus
    created_ts: int
    updated_ts: int
    version: int

    @property
    def takeable(self) -> bool:
        return self.status == "OPEN" and self.amount >= self.min_amount


@dataclass(frozen=True, slots=True)
class Trade:
    id: str
    offer_id: str
    offer_side: OfferSide
    seller: str
    buyer: str
    asset: str
    fiat: str
    price: int
    amount: int
    fiat_amount: int  # cents
    payment_methods: tuple[str, ...]
    payment_window: int
    status: TradeStatus
    last_action: str
    created_ts: int
    updated_ts: int
    expires_ts: int  # payment deadline
    paid_ts: int
    dispute_by: str
    dispute_reason: str
    dispute_ts: int
    resolution: str  # release | refund after a dispute
    resolved_by: str
    version: int

    def party(self, user: str, role: str = "user") -> Party | None:
        if user == self.buyer:
            return "buyer"
        if user == self.seller:
            return "seller"
        if role == "admin":
            return "admin"
        return None


def _pairs(flat: list[object]) -> dict[str, str]:
    def text(v: object) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    return {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


def _methods(raw: str) -> tuple[str, ...]:
    try:
        value = orjson.loads(raw or "[]")
    except orjson.JSONDecodeError:
        return ()
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def offer_from(rec: dict[str, str] | list[object]) -> Offer:
    r = _pairs(rec) if isinstance(rec, list) else rec
    return Offer(
        id=r["id"],
        owner=r["u"],
        side=r["side"],  # type: ignore[arg-type]
        asset=r["asset"],
        fiat=r["fiat"],
        price=int(r["price"]),
        amount=int(r["amount"]),
        locked=int(r["locked"]),
        filled=int(r["filled"]),
        min_amount=int(r["min"]),
        max_amount=int(r["max"]),
        payment_methods=_methods(r.get("methods", "")),
        payment_window=int(r["window"]),
        status=r["status"],  # type: ignore[arg-type]
        created_ts=int(r["cts"]),
        updated_ts=int(r["uts"]),
        version=int(r["v"]),
    )


def trade_from(rec: dict[str, str] | list[object]) -> Trade:
    r = _pairs(rec) if isinstance(rec, list) else rec
    return Trade(
        id=r["id"],
        offer_id=r["offer"],
        offer_side=r["oside"],  # type: ignore[arg-type]
        seller=r["seller"],
        buyer=r["buyer"],
        asset=r["asset"],
        fiat=r["fiat"],
        price=int(r["price"]),
        amount=int(r["amount"]),
        fiat_amount=int(r["fiat_amount"]),
        payment_methods=_methods(r.get("methods", "")),
        payment_window=int(r["window"]),
        status=r["status"],  # type: ignore[arg-type]
        last_action=r.get("act", ""),
        created_ts=int(r["cts"]),
        updated_ts=int(r["uts"]),
        expires_ts=int(r["exp"]),
        paid_ts=int(r.get("paid_ts") or 0),
        dispute_by=r.get("dispute_by", ""),
        dispute_reason=r.get("dispute_reason", ""),
        dispute_ts=int(r.get("dispute_ts") or 0),
        resolution=r.get("resolution", ""),
        resolved_by=r.get("resolved_by", ""),
        version=int(r["v"]),
    )


# -- wire format (PROTOCOL style: decimals as strings) -------------------------------


def offer_to_wire(o: Offer, scale: int) -> dict[str, object]:
    def amt(units: int) -> str:
        return format_amount(scale, units)

    return {
        "id": o.id,
        "owner": o.owner,
        "side": o.side,
        "asset": o.asset,
        "fiat": o.fiat,
        "price": format_fiat(o.price),
        "amount": amt(o.amount),
        "locked": amt(o.locked),
        "filled": amt(o.filled),
        "min_amount": amt(o.min_amount),
        "max_amount": amt(o.max_amount),
        "payment_methods": list(o.payment_methods),
        "payment_window": o.payment_window,
        "status": o.status,
        "created_ts": o.created_ts,
        "updated_ts": o.updated_ts,
    }


def trade_to_wire(t: Trade, scale: int) -> dict[str, object]:
    dispute = None
    if t.dispute_ts:
        dispute = {"by": t.dispute_by, "reason": t.dispute_reason, "ts": t.dispute_ts}
    return {
        "id": t.id,
        "offer_id": t.offer_id,
        "offer_side": t.offer_side,
        "seller": t.seller,
        "buyer": t.buyer,
        "asset": t.asset,
        "fiat": t.fiat,
        "price": format_fiat(t.price),
        "amount": format_amount(scale, t.amount),
        "fiat_amount": format_fiat(t.fiat_amount),
        "payment_methods": list(t.payment_methods),
        "status": t.status,
        "created_ts": t.created_ts,
        "updated_ts": t.updated_ts,
        "expires_ts": t.expires_ts,
        "paid_ts": t.paid_ts or None,
        "dispute": dispute,
        "resolution": t.resolution or None,
    }


@dataclass(frozen=True, slots=True)
class Message:
    n: int
    trade_id: str
    sender: str
    role: str  # buyer | seller | admin
    body: str
    ts: int


def message_from(raw: str | bytes) -> Message:
    m = orjson.loads(raw)
    return Message(int(m["n"]), m["trade"], m["from"], m["role"], m["body"], int(m["ts"]))


def message_to_wire(m: Message) -> dict[str, object]:
    return {"n": m.n, "trade_id": m.trade_id, "from": m.sender, "role": m.role,
            "body": m.body, "ts": m.ts}  # fmt: skip


# -- notifications -------------------------------------------------------------------

NOTICE_KIND = {
    "take": "p2p.trade_opened",
    "paid": "p2p.trade_paid",
    "release": "p2p.trade_released",
    "cancel": "p2p.trade_cancelled",
    "expire": "p2p.trade_expired",
    "dispute": "p2p.trade_disputed",
    "resolve_release": "p2p.dispute_resolved",
    "resolve_refund": "p2p.dispute_resolved",
}


def notices(t: Trade, scale: int) -> list[tuple[str, str, str]]:
    """``(user, kind, message)`` for both parties after the trade's last action."""
    what = f"{format_amount(scale, t.amount)} {t.asset} for {format_fiat(t.fiat_amount)} {t.fiat}"
    ref = f"Trade {t.id}"
    act = t.last_action
    # users are named by id only (as the page shows them: "user #3"); a dispute by its party
    by = {t.buyer: "the buyer", t.seller: "the seller"}.get(t.dispute_by, f"user #{t.dispute_by}")
    by_seller = {
        "take": f"{ref}: user #{t.buyer} is buying {what}; wait for the payment.",
        "paid": f"{ref}: the buyer marked {what} as paid; check and release.",
        "release": f"{ref}: you released {what}.",
        "cancel": f"{ref}: the buyer cancelled; {what} is yours again.",
        "expire": f"{ref}: not paid in time; the trade expired and {what} is yours again.",
        "dispute": f"{ref}: dispute opened by {by}: {t.dispute_reason}",
        "resolve_release": f"{ref}: the dispute was resolved: released to the buyer.",
        "resolve_refund": f"{ref}: the dispute was resolved: refunded to you.",
    }
    by_buyer = {
        "take": f"{ref}: pay {format_fiat(t.fiat_amount)} {t.fiat} to the seller within "
        f"{t.payment_window} minute{'' if t.payment_window == 1 else 's'}, then mark it paid.",
        "paid": f"{ref}: marked paid; waiting for the seller to release {what}.",
        "release": f"{ref}: the seller released {what} to your wallet.",
        "cancel": f"{ref}: you cancelled the trade.",
        "expire": f"{ref}: not marked paid in time; the trade expired.",
        "dispute": f"{ref}: dispute opened by {by}: {t.dispute_reason}",
        "resolve_release": f"{ref}: the dispute was resolved: {what} released to you.",
        "resolve_refund": f"{ref}: the dispute was resolved: refunded to the seller.",
    }
    kind = NOTICE_KIND[act]
    return [(t.seller, kind, by_seller[act]), (t.buyer, kind, by_buyer[act])]
