"""Stream entries -> PostgreSQL rows (pure: no I/O).

Market entries (``{m:X}:ev``, fields ``f``, ``l``, ``e``) become one
``market_events`` row, one ``trades`` row per trade, one merged ``orders`` row per
order id and a ``markets`` row per config change. Account entries
(``{u:U}:ev``, field ``e``) become ledger rows and deposit/withdrawal/transfer
rows (see :mod:`workers.ledger`), P2P record rows, and a ``notifications`` row per
``notice`` (no ledger row: it changes no balance). Every key is one the engine assigned.

A malformed entry raises :class:`PoisonEntry`; the drain parks it after a few
attempts instead of blocking the stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

# trades columns, in this order
TRADE_COLUMNS = (
    "market",
    "trade_id",
    "price",
    "size",
    "quote",
    "taker_side",
    "maker_order_id",
    "taker_order_id",
    "maker_user",
    "taker_user",
    "maker_fee",
    "taker_fee",
    "seq",
    "ts",
)
TradeRow = tuple[str, int, int, int, int, str, str, str, str, str, int, int, int, int]

MARKET_EVENT_COLUMNS = ("market", "first_seq", "last_seq", "ts", "events")
MarketEventRow = tuple[str, int, int, int, str]

MARKET_COLUMNS = (
    "id",
    "base",
    "quote",
    "base_scale",
    "tick",
    "lot",
    "min_size",
    "max_notional",
    "mult",
    "maker_fee_bps",
    "taker_fee_bps",
    "status",
    "seq",
    "updated_ts",
)
MarketRow = tuple[str, str, str, int, int, int, int, int, int, int, int, str, int, int]

FINAL_STATUSES = frozenset({"FILLED", "CANCELED", "EXPIRED", "REJECTED"})


class PoisonEntry(ValueError):
    """A stream entry that cannot be turned into rows."""


# orders columns, in this order. An order row is a list in this order; None = not
# said by the events seen. Identity columns (type .. created_ts) never change;
# state columns (filled .. updated_ts) follow the event with the highest seq;
# amount follows the highest amount_seq.
ORDER_COLUMNS = (
    "id",
    "user_id",
    "market",
    "side",
    "seq",
    "type",
    "tif",
    "post_only",
    "stp",
    "client_order_id",
    "price",
    "quote_amount",
    "created_ts",
    "amount",
    "amount_seq",
    "filled",
    "cost",
    "status",
    "reason",
    "updated_ts",
)
OrderRow = list[Any]
ORDER_CREATED = ORDER_COLUMNS.index("created_ts")  # set iff the batch saw `accepted`
ORDER_IDENTITY = ORDER_COLUMNS[ORDER_COLUMNS.index("type") : ORDER_CREATED + 1]
ORDER_STATE = ORDER_COLUMNS[ORDER_COLUMNS.index("filled") :]
_SEQ, _AMOUNT, _AMOUNT_SEQ = (ORDER_COLUMNS.index(c) for c in ("seq", "amount", "amount_seq"))
_GAPS = tuple(ORDER_COLUMNS.index(c) for c in ORDER_IDENTITY + ORDER_STATE)


def merge_order(a: OrderRow, b: OrderRow) -> OrderRow:
    """Combine two views of the same order (commutative; mirrors the SQL upsert)."""
    newer, older = (b, a) if b[_SEQ] > a[_SEQ] else (a, b)
    out = newer.copy()
    for i in _GAPS:
        if out[i] is None:
            out[i] = older[i]
    sa, sb = a[_AMOUNT_SEQ], b[_AMOUNT_SEQ]
    if sb is not None and (sa is None or sb > sa):
        out[_AMOUNT], out[_AMOUNT_SEQ] = b[_AMOUNT], sb
    else:
        out[_AMOUNT], out[_AMOUNT_SEQ] = a[_AMOUNT], sa
    return out


@dataclass(slots=True)
class Rows:
    """Rows of a batch of entries, ready for the writer."""

    market_events: list[MarketEventRow] = field(default_factory=list)
    trades: list[TradeRow] = field(default_factory=list)
    orders: dict[str, OrderRow] = field(default_factory=dict)  # by order id
    markets: dict[str, MarketRow] = field(default_factory=dict)
    ledger: list[tuple[Any, ...]] = field(default_factory=list)
    deposits: list[tuple[Any, ...]] = field(default_factory=list)
    withdrawals: list[tuple[Any, ...]] = field(default_factory=list)
    transfers: list[tuple[Any, ...]] = field(default_factory=list)
    p2p_offers: list[tuple[Any, ...]] = field(default_factory=list)
    p2p_trades: list[tuple[Any, ...]] = field(default_factory=list)
    p2p_messages: list[tuple[Any, ...]] = field(default_factory=list)
    notifications: list[tuple[Any, ...]] = field(default_factory=list)
    json_booleans: bool = False  # some market entry's events have a JSON true or false

    def add_order(self, row: OrderRow) -> None:
        old = self.orders.get(row[0])
        self.orders[row[0]] = row if old is None else merge_order(old, row)

    def _merge_orders(self, theirs: dict[str, OrderRow]) -> None:
        """``add_order`` of each of ``theirs``: the ids both have merged, the others
        added in one ``update`` (batches of a market rarely share an order)."""
        mine = self.orders
        if mine.keys().isdisjoint(theirs):
            mine.update(theirs)
            return
        both = {oid: merge_order(mine[oid], theirs[oid]) for oid in mine.keys() & theirs.keys()}
        mine.update(theirs)
        mine.update(both)

    def add_market(self, row: MarketRow) -> None:
        old = self.markets.get(row[0])
        if old is None or row[12] > old[12]:
            self.markets[row[0]] = row

    def extend(self, other: Rows) -> None:
        self.market_events += other.market_events
        self.trades += other.trades
        self._merge_orders(other.orders)
        for market in other.markets.values():
            self.add_market(market)
        self.ledger += other.ledger
        self.deposits += other.deposits
        self.withdrawals += other.withdrawals
        self.transfers += other.transfers
        self.p2p_offers += other.p2p_offers
        self.p2p_trades += other.p2p_trades
        self.p2p_messages += other.p2p_messages
        self.notifications += other.notifications
        self.json_booleans |= other.json_booleans

    def __len__(self) -> int:
        return (
            len(self.market_events)
            + len(self.trades)
            + len(self.orders)
            + len(self.markets)
            + len(self.ledger)
            + len(self.deposits)
            + len(self.withdrawals)
            + len(self.transfers)
            + len(self.p2p_offers)
            + len(self.p2p_trades)
            + len(self.p2p_messages)
            + len(self.notifications)
        )


# -- field access -------------------------------------------------------------


def _int(ev: dict[str, Any], name: str) -> int:
    v = ev.get(name)
    if type(v) is not int:
        raise PoisonEntry(f"{name} must be an integer, got {v!r}")
    return v


def _str(ev: dict[str, Any], name: str) -> str:
    v = ev.get(name)
    if not isinstance(v, str):
        raise PoisonEntry(f"{name} must be a string, got {v!r}")
    return v


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _field(fields_: Any, name: str) -> Any:
    """A stream entry field: ``fields_`` is a dict (str or bytes keys) or the flat
    [name, value, ...] list of a raw reply."""
    raw = name.encode()
    if type(fields_) is list:
        for i in range(0, len(fields_) - 1, 2):
            if fields_[i] == raw or fields_[i] == name:
                return fields_[i + 1]
    else:
        v = fields_.get(raw)
        if v is not None:
            return v
        if name in fields_:
            return fields_[name]
    raise PoisonEntry(f"missing field {name}")


# -- market entries -------------------------------------------------------------


def market_entry_rows(market: str, entry: Any, into: Rows | None = None) -> Rows:
    """Rows of one ``{m:market}:ev`` entry (fields ``f``, ``l``, ``e``).

    Structure (seqs, kinds, keys) is checked here; value types are checked by
    PostgreSQL (a string in a BIGINT column fails the batch, which the drain then
    bisects down to the entry; see ``pgwrite._BINARY_TYPES``). Rows are added to
    ``into`` if given (partially, if the entry turns out to be poison)."""
    rows = Rows() if into is None else into
    try:
        if type(entry) is list and len(entry) == 6 and entry[0] == b"f" and entry[2] == b"l":
            first, last, raw = int(entry[1]), int(entry[3]), entry[5]  # the engine's layout
            if entry[4] != b"e":
                raw = _field(entry, "e")
        else:
            first, last, raw = int(_field(entry, "f")), int(_field(entry, "l")), _field(entry, "e")
        events = orjson.loads(raw)
        if type(events) is not list or not events or first < 1 or last != first + len(events) - 1:
            raise PoisonEntry("events do not match f..l")
        _market_events(market, events, first, rows)
        ts = events[0]["ts"]
    except (ValueError, TypeError, KeyError) as exc:
        raise PoisonEntry(f"{type(exc).__name__}: {exc}") from None
    text = raw.decode() if type(raw) is bytes else str(raw)
    if "true" in text or "false" in text:  # (the engine writes none) COPY them as text
        rows.json_booleans = True
    rows.market_events.append((market, first, last, ts, text))
    return rows


def _market_events(market: str, events: list[Any], seq: int, rows: Rows) -> None:
    """Trade and order rows of the events of one entry, the first with ``seq``
    (the hot loop: the common kinds inline, in order of frequency)."""
    trades = rows.trades
    orders = rows.orders
    for ev in events:
        if ev["seq"] != seq:
            raise PoisonEntry(f"event without seq {seq}")
        kind = ev["e"]
        if kind == "level":
            pass
        elif kind == "done":
            reason = ev["reason"]
            if reason not in FINAL_STATUSES:
                raise PoisonEntry(f"bad done reason {reason!r}")
            oid = ev["id"]
            amount = ev.get("amount")
            old = orders.get(oid)
            if old is not None and old[_SEQ] < seq:  # the usual: later than what we have
                _newer_done(old, ev, market, seq, amount, reason)
            else:
                # id user market side seq | type tif po stp cid price qb created |
                # amount amount_seq | filled cost status reason updated
                row = [oid, ev["u"], market, ev["side"], seq, None, None, None, None, None,
                       None, None, None, amount, None if amount is None else seq, ev["filled"],
                       ev["cost"], reason, ev["msg"] or None, ev["ts"]]  # fmt: skip
                orders[oid] = row if old is None else merge_order(old, row)
        elif kind == "accepted":
            oid = ev["id"]
            ts = ev["ts"]
            row = [oid, ev["u"], market, ev["side"], seq, ev["type"], ev["tif"], bool(ev["po"]),
                   ev.get("stp"), ev["cid"] or None, ev["price"], ev["qb"], ts, ev["amount"],
                   seq, 0, 0, "NEW", None, ts]  # fmt: skip
            old = orders.get(oid)
            orders[oid] = row if old is None else merge_order(old, row)
        elif kind == "trade":
            tid, price, size, quote, ts = ev["tid"], ev["price"], ev["size"], ev["quote"], ev["ts"]
            # candles are computed from these in Python: integers (as the engine writes
            # them) or poison, not strings that PostgreSQL would take and Python not
            if not (type(tid) is type(price) is type(size) is type(quote) is type(ts) is int):
                raise PoisonEntry(f"trade {tid!r}: tid, price, size, quote and ts must be integers")
            trades.append(
                (market, tid, price, size, quote, ev["side"], ev["maker"], ev["taker"], ev["mu"],
                 ev["tu"], ev["mfee"], ev["tfee"], seq, ts)
            )  # fmt: skip
        else:
            _other_event(market, ev, kind, seq, rows)
        seq += 1


def _newer_done(
    row: OrderRow, ev: dict[str, Any], market: str, seq: int, amount: Any, reason: Any
) -> None:
    """``row`` merged in place with a later ``done`` event of its order: exactly
    ``merge_order(row, <the done row>)``, without building the done row."""
    row[1], row[3], row[4] = ev["u"], ev["side"], seq
    row[2] = market
    if amount is not None and (row[_AMOUNT_SEQ] is None or seq > row[_AMOUNT_SEQ]):
        row[_AMOUNT], row[_AMOUNT_SEQ] = amount, seq
    if (v := ev["filled"]) is not None:
        row[15] = v
    if (v := ev["cost"]) is not None:
        row[16] = v
    row[17] = reason  # one of FINAL_STATUSES
    if v := ev["msg"]:
        row[18] = v
    if (v := ev["ts"]) is not None:
        row[19] = v


def _other_event(market: str, ev: dict[str, Any], kind: Any, seq: int, rows: Rows) -> None:
    if kind == "reduced":
        rows.add_order(
            [ev["id"], ev["u"], market, ev["side"], seq, None, None, None, None, None, None,
             None, None, ev["amount"], seq, None, None, None, None, ev["ts"]]
        )  # fmt: skip
    elif kind == "market":
        rows.add_market(
            (market, ev["base"], ev["quote"], ev["bscale"], ev["tick"], ev["lot"], ev["min"],
             ev["maxn"], ev["mult"], ev["mfee"], ev["tfee"], ev["status"], seq, ev["ts"])
        )  # fmt: skip
    elif type(kind) is not str:
        raise PoisonEntry(f"event without kind: {ev!r}")
    # other kinds (level, future ones) live only in market_events


def _side(ev: dict[str, Any]) -> str:
    side = ev.get("side")
    if side != "buy" and side != "sell":
        raise PoisonEntry(f"bad side {side!r}")
    return side


# -- account entries ---------------------------------------------------------------

LEDGER_COLUMNS = (
    "user_id",
    "entry_ms",
    "entry_seq",
    "idx",
    "leg",
    "kind",
    "asset",
    "available",
    "held",
    "escrow",
    "ref",
    "market",
    "trade_id",
    "ts",
    "event",
)
DEPOSIT_COLUMNS = ("id", "user_id", "asset", "amount", "address", "ts")
WITHDRAWAL_COLUMNS = (
    "id",
    "user_id",
    "asset",
    "amount",
    "address",
    "status",
    "created_ts",
    "updated_ts",
)
TRANSFER_COLUMNS = ("id", "from_user", "to_user", "asset", "amount", "ts", "credited_ts")

# (asset, available delta, held delta, escrow delta) legs of one ledger event
Leg = tuple[str, int, int, int]


def ledger_legs(ev: dict[str, Any]) -> list[Leg]:
    """Balance changes of one account ledger event (mirrors lua/20_accounts.lua)."""
    kind = ev.get("e")
    if kind == "fill":
        paid, got, fee = _int(ev, "paid"), _int(ev, "got"), _int(ev, "fee")
        return [(_str(ev, "out"), 0, -paid, 0), (_str(ev, "in"), got - fee, 0, 0)]
    asset, amount = _str(ev, "asset"), _int(ev, "amount")
    if kind in ("hold", "withdraw_req"):
        return [(asset, -amount, amount, 0)]
    if kind in ("release", "withdraw_rejected"):
        return [(asset, amount, -amount, 0)]
    if kind in ("fee", "deposit", "transfer_in"):
        return [(asset, amount, 0, 0)]
    if kind == "withdraw_done":
        return [(asset, 0, -amount, 0)]
    if kind == "transfer_out":
        return [(asset, -amount, 0, 0)]
    if kind == "escrow":
        return [(asset, -amount, 0, amount)]
    if kind == "unescrow":
        # a P2P release is unescrow + transfer_out (which takes it from available)
        return [(asset, amount, 0, -amount)]
    raise PoisonEntry(f"unknown ledger event {kind!r}")


RECORD_KINDS = frozenset({"p2p_offer", "p2p_trade", "p2p_msg"})  # no balance change
NOTICE = "notice"  # a notification (ntf_push): no balance change

P2P_OFFER_COLUMNS = (
    "id", "user_id", "side", "asset", "fiat", "status", "price", "min_amount", "max_amount",
    "amount", "locked", "filled", "window_min", "methods", "created_ts", "updated_ts", "version",
)  # fmt: skip
P2P_TRADE_COLUMNS = (
    "id", "offer_id", "offer_side", "seller", "buyer", "asset", "fiat", "status", "last_action",
    "price", "amount", "fiat_amount", "window_min", "methods", "expires_ts", "paid_ts",
    "dispute_by", "dispute_reason", "dispute_ts", "resolution", "resolved_by", "created_ts",
    "updated_ts", "version",
)  # fmt: skip
P2P_MESSAGE_COLUMNS = ("trade_id", "n", "sender", "role", "body", "ts")
NOTIFICATION_COLUMNS = (
    "id", "user_id", "kind", "message", "ref", "ts", "dedup_key", "entry_ms", "entry_seq",
)  # fmt: skip
_INT64_MAX = 2**63 - 1

_OFFER_FIELDS = (
    "id", "u", "side", "asset", "fiat", "status", "price", "min", "max", "amount", "locked",
    "filled", "window", "methods", "cts", "uts", "v",
)  # fmt: skip
_TRADE_FIELDS = (
    "id", "offer", "oside", "seller", "buyer", "asset", "fiat", "status", "act", "price",
    "amount", "fiat_amount", "window", "methods", "exp", "paid_ts", "dispute_by",
    "dispute_reason", "dispute_ts", "resolution", "resolved_by", "cts", "uts", "v",
)  # fmt: skip


def _record_row(ev: dict[str, Any], names: tuple[str, ...]) -> tuple[Any, ...]:
    out = []
    for name in names:
        v = ev[name]
        if name == "methods":
            v = orjson.dumps(v).decode()
        elif v == "":
            v = None
        out.append(v)
    return tuple(out)


def account_entry_rows(
    user: str, entry_id: str, entry: dict[Any, Any], into: Rows | None = None
) -> Rows:
    """Rows of one ``{u:user}:ev`` entry (field ``e``: JSON array of ledger events),
    added to ``into`` if given."""
    try:
        ms, _, sq = entry_id.partition("-")
        entry_ms, entry_seq = int(ms), int(sq)
        events = orjson.loads(_field(entry, "e"))
    except (ValueError, TypeError) as exc:
        raise PoisonEntry(str(exc)) from None
    if isinstance(events, dict):
        events = [events]
    if not isinstance(events, list) or not events:
        raise PoisonEntry("e must be a non-empty JSON array")
    rows = Rows() if into is None else into
    for idx, ev in enumerate(events):
        if not isinstance(ev, dict):
            raise PoisonEntry(f"event {idx} is not an object")
        kind, ts = _str(ev, "e"), _int(ev, "ts")
        ref = ev.get("id") if isinstance(ev.get("id"), str) else None
        market = ev.get("market") if isinstance(ev.get("market"), str) else None
        tid = ev.get("tid") if type(ev.get("tid")) is int else None
        if kind in RECORD_KINDS:
            _p2p_record(kind, ev, rows)
            continue
        if kind == NOTICE:
            rows.notifications.append(notification_row(user, entry_ms, entry_seq, ev))
            continue
        raw = orjson.dumps(ev).decode()
        for leg, (asset, avail, held, escrow) in enumerate(ledger_legs(ev)):
            rows.ledger.append(
                (
                    user,
                    entry_ms,
                    entry_seq,
                    idx,
                    leg,
                    kind,
                    asset,
                    avail,
                    held,
                    escrow,
                    ref,
                    market,
                    tid,
                    ts,
                    raw if leg == 0 else None,
                )
            )
        _account_record(user, kind, ts, ev, rows)
    return rows


def _p2p_record(kind: str, ev: dict[str, Any], rows: Rows) -> None:
    try:
        if kind == "p2p_offer":
            rows.p2p_offers.append(_record_row(ev, _OFFER_FIELDS))
        elif kind == "p2p_trade":
            rows.p2p_trades.append(_record_row(ev, _TRADE_FIELDS))
        else:
            rows.p2p_messages.append(
                (ev["trade"], ev["n"], ev["from"], ev["role"], ev["body"], ev["ts"])
            )
    except KeyError as exc:
        raise PoisonEntry(f"{kind} without {exc}") from None


def notification_row(
    user: str, entry_ms: int, entry_seq: int, ev: dict[str, Any]
) -> tuple[Any, ...]:
    """The ``notifications`` row of a ``notice`` event (id: the engine's snowflake)."""
    raw_id = _str(ev, "id")
    if not (raw_id.isascii() and raw_id.isdigit()) or not 0 < int(raw_id) <= _INT64_MAX:
        raise PoisonEntry(f"bad notification id {raw_id!r}")
    ref, dedup = ev.get("ref"), ev.get("dedup")
    return (int(raw_id), user, _str(ev, "kind"), _str(ev, "message"),
            ref if isinstance(ref, str) and ref else None, _int(ev, "ts"),
            dedup if isinstance(dedup, str) and dedup else None, entry_ms, entry_seq)  # fmt: skip


def _account_record(user: str, kind: str, ts: int, ev: dict[str, Any], rows: Rows) -> None:
    """Deposit / withdrawal / transfer rows of a ledger event."""
    if kind == "deposit":
        rows.deposits.append(
            (_str(ev, "id"), user, _str(ev, "asset"), _int(ev, "amount"), ev.get("address"), ts)
        )
    elif kind.startswith("withdraw_"):
        status = {"withdraw_req": "PENDING", "withdraw_done": "COMPLETED"}.get(kind, "REJECTED")
        rows.withdrawals.append(
            (
                _str(ev, "id"),
                user,
                _str(ev, "asset"),
                _int(ev, "amount"),
                ev.get("address"),
                status,
                ts,
                ts,
            )
        )
    elif kind == "transfer_out":
        rows.transfers.append(
            (_str(ev, "id"), user, _str(ev, "to"), _str(ev, "asset"), _int(ev, "amount"), ts, None)
        )
    elif kind == "transfer_in":
        rows.transfers.append(
            (_str(ev, "id"), _str(ev, "from"), user, _str(ev, "asset"), _int(ev, "amount"), ts, ts)
        )


def stream_owner(stream: str) -> tuple[str, str]:
    """``{m:BTC-USD}:ev`` -> ("m", "BTC-USD"); ``{u:42}:ev`` -> ("u", "42")."""
    if len(stream) < 8 or stream[0] != "{" or stream[2] != ":" or not stream.endswith("}:ev"):
        raise ValueError(f"not an event stream: {stream!r}")
    return stream[1], stream[3:-4]
