"""Plain-text rendering for the CLI (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from client.checksum import Level


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A left-aligned text table; columns listed in ``right`` are right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def ladder(bids: Sequence[Level], asks: Sequence[Level], title: str = "") -> str:
    """Asks above (best at the bottom), bids below (best at the top)."""
    rows: list[list[str]] = [["ask", price, size] for price, size in reversed(asks)]
    rows.append(["", "", ""])
    rows += [["bid", price, size] for price, size in bids]
    text = table(["side", "price", "size"], rows, right=(1, 2))
    return f"{title}\n{text}" if title else text


def order_line(order: Mapping[str, Any]) -> str:
    """One line per order: id, side, type, price, amount, filled, status."""
    price = order.get("price") or "market"
    text = (
        f"{order.get('id')} {order.get('market')} {order.get('side')} {order.get('type')} "
        f"{order.get('amount')} @ {price}: {order.get('status')}, filled {order.get('filled')}"
    )
    if order.get("client_order_id"):
        text += f" (client id {order['client_order_id']})"
    return text


def fills_table(fills: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [f.get("trade_id"), f.get("price"), f.get("size"), f.get("fee"), f.get("fee_asset"),
         f.get("liquidity")]
        for f in fills
    ]  # fmt: skip
    return table(["trade", "price", "size", "fee", "asset", "liquidity"], rows, right=(1, 2, 3))


def fields_line(result: Any) -> str:
    """``key=value`` pairs of a result object (anything else as is)."""
    if isinstance(result, Mapping):
        return " ".join(f"{key}={value}" for key, value in result.items())
    return str(result)
