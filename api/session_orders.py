"""Cancel on disconnect: the orders a WebSocket placed, canceled when it closes.

A market maker's quotes must not outlive its connection (a crashed bot, a dropped
link). After ``session.cancel_on_disconnect {enabled: true}`` every order that this
socket places and that may still rest is canceled when the socket closes, for any
reason (as Deribit's connection-scoped cancel-on-disconnect; Coinbase's FIX session
flag). Orders placed over HTTP or on other sockets are left alone. Closing is
handled by the node that holds the socket: if that node itself dies, nothing is
canceled (documented).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

log = logging.getLogger("hftx.ws")

MAX_TRACKED = 10_000  # orders remembered per socket (the oldest are forgotten first)
CANCEL_TIMEOUT_S = 5.0  # at most this long cancelling a closed socket's orders
OPEN = frozenset({"NEW", "PARTIALLY_FILLED"})


class SessionOrders:
    """The possibly resting orders one socket placed, by id -> market (bounded)."""

    def __init__(self, limit: int = MAX_TRACKED) -> None:
        self.enabled = False
        self.limit = limit
        self._orders: OrderedDict[str, str] = OrderedDict()

    def placed(self, order: dict[str, Any]) -> None:
        """Remember an order this socket placed (the wire order), if it may rest and
        cancel on disconnect is on (nothing is kept for sockets that do not use it)."""
        if not self.enabled or order.get("status") not in OPEN:
            return
        self._orders[order["id"]] = order["market"]
        if len(self._orders) > self.limit:
            self._orders.popitem(last=False)

    def ended(self, orders: list[dict[str, Any]]) -> None:
        """Forget the orders an answer on this socket shows ended (a cancel, a cancel
        all): a market maker cancels most of its quotes, and each was kept up to the
        limit. The node's private hub calls it too with each ``orders`` push of an
        ended order (filled, canceled elsewhere) while a socket of the user on this node
        is subscribed to a private channel; otherwise such orders stay until the limit
        pushes them out (canceling them again at the close is harmless)."""
        for order in orders:
            if order.get("status") not in OPEN:
                self._orders.pop(order["id"], None)

    def __len__(self) -> int:
        return len(self._orders)

    def by_market(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for order_id, market in self._orders.items():
            out.setdefault(market, []).append(order_id)
        return out

    async def cancel(self, ex: Any, user_id: str) -> int:
        """Cancel what is still open of them (when enabled); the number canceled.
        Refusals (a halted market, Redis away) are logged, never raised."""
        if not self.enabled or not self._orders:
            return 0
        canceled = 0
        for market, ids in self.by_market().items():
            try:
                canceled += len(await ex.cancel_orders(user_id, market, ids))
            except Exception as exc:
                log.warning("cancel on disconnect of %d order(s) in %s: %r", len(ids), market, exc)
        self._orders.clear()
        return canceled
