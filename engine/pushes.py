"""Private ``orders`` pushes (PROTOCOL.md) from the events of one engine call (pure).

One push per order per event that concerns it: NEW (accepted), TRADE (each fill, to
the maker and to the taker), CANCELED / EXPIRED / REJECTED (done). A fill that
completes an order is its last TRADE push, with status FILLED.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine.types import Market, Order
from engine.units import format_amount, format_price, format_size, order_to_wire

EXEC_OF_DONE = {"CANCELED": "CANCELED", "EXPIRED": "EXPIRED", "REJECTED": "REJECTED"}


def order_pushes(
    market: Market, events: list[dict[str, Any]], final: dict[str, Order]
) -> list[tuple[str, dict[str, Any]]]:
    """``(user id, push)`` pairs in event order.

    ``final`` holds every order the events mention, in its state after the call;
    states in between are recomputed from the trade events.
    """
    state = {oid: _rewind(order, events) for oid, order in final.items()}
    last_trade = {}
    for i, ev in enumerate(events):
        if ev["e"] == "trade":
            last_trade[ev["maker"]] = last_trade[ev["taker"]] = i
    out: list[tuple[str, dict[str, Any]]] = []
    for i, ev in enumerate(events):
        kind = ev["e"]
        if kind == "accepted":
            order = state.get(ev["id"])
            if order is not None:
                out.append((order.user_id, _push(market, "NEW", order, ev["ts"])))
        elif kind == "trade":
            for oid, liquidity in ((ev["maker"], "maker"), (ev["taker"], "taker")):
                order = state.get(oid)
                if order is None:
                    continue
                order = replace(
                    order, filled=order.filled + ev["size"], cost=order.cost + ev["quote"]
                )
                completes = order.filled == order.amount or (
                    last_trade[oid] == i and final[oid].status == "FILLED"
                )
                order.status = "FILLED" if completes else "PARTIALLY_FILLED"
                state[oid] = order
                fee = ev["mfee"] if liquidity == "maker" else ev["tfee"]
                fee_asset = market.base if order.side == "buy" else market.quote
                scale = market.base_scale if order.side == "buy" else market.quote_scale
                push = _push(market, "TRADE", order, ev["ts"])
                push.update(
                    trade_id=ev["tid"],
                    last_price=format_price(market, ev["price"]),
                    last_size=format_size(market, ev["size"]),
                    liquidity=liquidity,
                    fee=format_amount(scale, fee),
                    fee_asset=fee_asset,
                )
                out.append((order.user_id, push))
        elif kind == "done" and ev["reason"] in EXEC_OF_DONE:
            order = state.get(ev["id"])
            if order is not None:
                order = replace(order, status=ev["reason"], filled=ev["filled"], cost=ev["cost"])
                state[ev["id"]] = order
                push = _push(market, EXEC_OF_DONE[ev["reason"]], order, ev["ts"])
                push["reason"] = ev["msg"]
                out.append((order.user_id, push))
    return out


def _rewind(order: Order, events: list[dict[str, Any]]) -> Order:
    """The order as it was before these events."""
    filled, cost = order.filled, order.cost
    accepted_here = False
    for ev in events:
        if ev["e"] == "trade" and order.id in (ev["maker"], ev["taker"]):
            filled -= ev["size"]
            cost -= ev["quote"]
        elif ev["e"] == "accepted" and ev["id"] == order.id:
            accepted_here = True
    status = "NEW" if (accepted_here or filled == 0) else "PARTIALLY_FILLED"
    return replace(order, filled=filled, cost=cost, status=status)  # type: ignore[arg-type]


def _push(market: Market, exec_type: str, order: Order, ts: int) -> dict[str, Any]:
    return {
        "channel": "orders",
        "type": "update",
        "market": market.id,
        "exec_type": exec_type,
        "order": order_to_wire(market, replace(order, updated_ts=ts)),
        "ts": ts,
    }
