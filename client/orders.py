"""Order request parameters (pure): validated and shaped as PROTOCOL.md ``order.place``."""

from __future__ import annotations

import re

from client.amounts import Amount, to_wire
from client.codec import Json
from client.errors import HftxError

SIDES = ("buy", "sell")
TYPES = ("limit", "market")
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
STP = ("cancel_newest", "cancel_oldest", "cancel_both")
CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9._:-]{1,36}")


def _invalid(message: str) -> HftxError:
    return HftxError("INVALID_PARAM", message, 400)


def wire_amount(value: Amount, what: str) -> str:
    """``value`` as a wire decimal string; a malformed one (``"abc"``, ``"NaN"``) is
    ``INVALID_PARAM`` like the exchange would answer. Floats stay a TypeError."""
    try:
        return to_wire(value)
    except ValueError as exc:
        raise _invalid(f"{what}: {exc}") from None


def order_params(
    market: str,
    side: str,
    type: str,
    amount: Amount | None = None,
    price: Amount | None = None,
    *,
    time_in_force: str | None = None,
    post_only: bool = False,
    client_order_id: str | None = None,
    stp: str | None = None,
    quote_amount: Amount | None = None,
) -> Json:
    """Check an order locally and build its wire parameters (None fields are omitted).

    ``side`` and ``type`` may come in ccxt's order (``type`` first): the two sets of
    values are disjoint. Raises :class:`HftxError` ``INVALID_PARAM`` for what the
    exchange would refuse anyway, and TypeError for float amounts.
    """
    if side in TYPES and type in SIDES:  # ccxt's create_order(symbol, type, side, ...)
        side, type = type, side
    if side not in SIDES:
        raise _invalid(f"side must be one of {SIDES}, got {side!r}")
    if type not in TYPES:
        raise _invalid(f"type must be one of {TYPES}, got {type!r}")
    if type == "limit" and price is None:
        raise _invalid("a limit order needs a price")
    if type == "market" and price is not None:
        raise _invalid("a market order takes no price")
    if quote_amount is None and amount is None:
        raise _invalid("an order needs an amount")
    if quote_amount is not None:
        if (type, side) != ("market", "buy"):
            raise _invalid("quote_amount is only for market buys")
        if amount is not None:
            raise _invalid("give amount or quote_amount, not both")
    if time_in_force is not None and time_in_force not in TIME_IN_FORCE:
        raise _invalid(f"time_in_force must be one of {TIME_IN_FORCE}, got {time_in_force!r}")
    if stp is not None and stp not in STP:
        raise _invalid(f"stp must be one of {STP}, got {stp!r}")
    if client_order_id is not None and not CLIENT_ORDER_ID.fullmatch(client_order_id):
        raise _invalid(f"client_order_id must match {CLIENT_ORDER_ID.pattern}")
    params: Json = {"market": market, "side": side, "type": type}
    optional = {
        "amount": None if amount is None else wire_amount(amount, "amount"),
        "price": None if price is None else wire_amount(price, "price"),
        "quote_amount": None if quote_amount is None else wire_amount(quote_amount, "quote_amount"),
        "time_in_force": time_in_force,
        "post_only": post_only or None,
        "client_order_id": client_order_id,
        "stp": stp,
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    return params
