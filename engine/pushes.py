"""Private ``orders`` pushes (PROTOCOL.md) from the events of one engine call (pure).

One push per order per event that concerns it: NEW (accepted), TRADE (each fill, to
the maker and to the taker), CANCELED / EXPIRED / REJECTED (done), REPLACED (reduced
in place by an amend, as Binance's keep-priority amend). A fill that completes an
order is its last TRADE push, with status FILLED.

This runs for every order a node places or cancels, so it works on plain numbers
(filled, cost, status per order) and formats with the market's cached grid.
"""

from __future__ import annotations

from typing import Any

from engine.types import Market, Order
from engine.units import grid, order_state_to_wire

EXEC_OF_DONE = {"CANCELED": "CANCELED", "EXPIRED": "EXPIRED", "REJECTED": "REJECTED"}


def order_pushes(
    market: Market, events: list[dict[str, Any]], final: dict[str, Order]
) -> list[tuple[str, dict[str, Any]]]:
    """``(user id, push)`` pairs in event order.

    ``final`` holds every order the events mention: the taker as the call left it,
    the others for their fixed fields only (they may have been read after later
    calls). The states in between come from the events: a maker's filled and cost
    after each trade are in the trade event (``mfilled``, ``mcost``), the taker is
    rewound from its final state, and a fill completes an order when the same call
    reports it done FILLED.
    """
    state, last_trade, filled_now = _states_before(events, final)
    g = grid(market)
    market_id = market.id
    out: list[tuple[str, dict[str, Any]]] = []
    for i, ev in enumerate(events):
        kind = ev["e"]
        if kind == "trade":
            for oid, liquidity in ((ev["maker"], "maker"), (ev["taker"], "taker")):
                s = state.get(oid)
                if s is None:
                    continue
                completes = last_trade[oid] == i and oid in filled_now
                push = _trade_push(market, g, ev, final[oid], liquidity, s, completes)
                out.append((final[oid].user_id, push))
        elif kind == "accepted":
            s = state.get(ev["id"])
            if s is not None:
                order = final[ev["id"]]
                out.append((order.user_id, _push(market_id, g, "NEW", order, s, ev["ts"])))
        elif kind == "reduced":
            s = state.get(ev["id"])
            if s is not None:
                order = final[ev["id"]]
                out.append((order.user_id, _push(market_id, g, "REPLACED", order, s, ev["ts"])))
        elif kind == "done":
            exec_type = EXEC_OF_DONE.get(ev["reason"])
            s = state.get(ev["id"])
            if exec_type is not None and s is not None:
                order = final[ev["id"]]
                s[0], s[1], s[2] = ev["filled"], ev["cost"], ev["reason"]
                push = _push(market_id, g, exec_type, order, s, ev["ts"])
                push["reason"] = ev["msg"]
                out.append((order.user_id, push))
    return out


def _states_before(
    events: list[dict[str, Any]], final: dict[str, Order]
) -> tuple[dict[str, list[Any]], dict[str, int], set[str]]:
    """Each order's ``[filled, cost, status]`` before the call (the taker rewound over
    the call's trades), the index of each order's last trade event, and the orders
    the call reports done FILLED."""
    state: dict[str, list[Any]] = {oid: [o.filled, o.cost, ""] for oid, o in final.items()}
    accepted: set[str] = set()
    filled_now: set[str] = set()
    last_trade: dict[str, int] = {}
    for i, ev in enumerate(events):
        kind = ev["e"]
        if kind == "trade":
            last_trade[ev["maker"]] = last_trade[ev["taker"]] = i
            s = state.get(ev["taker"])
            if s is not None:
                s[0] -= ev["size"]
                s[1] -= ev["quote"]
        elif kind == "accepted":
            accepted.add(ev["id"])
        elif kind == "done" and ev["reason"] == "FILLED":
            filled_now.add(ev["id"])
    for oid, s in state.items():
        s[2] = "NEW" if (oid in accepted or s[0] == 0) else "PARTIALLY_FILLED"
    return state, last_trade, filled_now


def _trade_push(
    market: Market,
    g: Any,
    ev: dict[str, Any],
    order: Order,
    liquidity: str,
    s: list[Any],
    completes: bool,
) -> dict[str, Any]:
    """One side's TRADE push of a trade event; advances that order's state ``s``."""
    if liquidity == "maker":
        s[0], s[1] = ev["mfilled"], ev["mcost"]
    else:
        s[0] += ev["size"]
        s[1] += ev["quote"]
    s[2] = "FILLED" if completes else "PARTIALLY_FILLED"
    fee = ev["mfee"] if liquidity == "maker" else ev["tfee"]
    buy = order.side == "buy"
    # a maker's amount as it was at this trade (an amend may have lowered it since
    # ``final`` was read); events before mamount existed: as read
    amount = ev.get("mamount") if liquidity == "maker" else None
    push = _push(market.id, g, "TRADE", order, s, ev["ts"], amount)
    push["trade_id"] = ev["tid"]
    push["last_price"] = g.price(ev["price"])
    push["last_size"] = g.size(ev["size"])
    push["liquidity"] = liquidity
    push["fee"] = g.base(fee) if buy else g.quote(fee)
    push["fee_asset"] = market.base if buy else market.quote
    return push


def _push(
    market_id: str,
    g: Any,
    exec_type: str,
    order: Order,
    s: list[Any],
    ts: int,
    amount: int | None = None,
) -> dict[str, Any]:
    return {
        "channel": "orders",
        "type": "update",
        "market": market_id,
        "exec_type": exec_type,
        "order": order_state_to_wire(g, order, s[0], s[1], s[2], ts, amount),
        "ts": ts,
    }
