"""Random command streams through the Lua engine and the Python reference matcher.

Both must produce identical events (trades, dones, levels, seqs) and books; after
every step the invariants hold: book never crossed, seq contiguous, depth equals
the sum of resting orders.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import keys
from engine import market as M
from engine.types import EngineError, OrderRequest
from tests.engine_helpers import BTC_USD, LOT, new_market
from tests.reference_matcher import ReferenceMarket, RefError

MKT = BTC_USD.id
USERS = ["ann", "ben", "cat"]

place_cmd = st.fixed_dictionaries(
    {
        "op": st.just("place"),
        "user": st.sampled_from(USERS),
        "side": st.sampled_from(["buy", "sell"]),
        "type": st.sampled_from(["limit", "limit", "limit", "market"]),
        "tif": st.sampled_from(["GTC", "GTC", "IOC", "FOK"]),
        "po": st.sampled_from([False, False, False, False, True]),
        "price": st.integers(9_996, 10_004).map(lambda cents: cents * BTC_USD.tick),
        "lots": st.integers(1, 12),
        "budget": st.integers(0, 3_000_000),
        "stp": st.sampled_from(["cancel_newest", "cancel_oldest", "cancel_both"]),
        "cid": st.sampled_from(["", "", "", "c1", "c2"]),
        "off_tick": st.integers(0, 20).map(lambda n: n == 0),
    }
)
cancel_cmd = st.fixed_dictionaries(
    {"op": st.just("cancel"), "user": st.sampled_from(USERS), "pick": st.integers(0, 100)}
)
reduce_cmd = st.fixed_dictionaries(
    {
        "op": st.just("reduce"),
        "user": st.sampled_from(USERS),
        "pick": st.integers(0, 100),
        "lots": st.integers(0, 12),
    }
)
cancel_many_cmd = st.fixed_dictionaries(
    {"op": st.just("cancel_many"), "user": st.sampled_from(USERS)}
)
commands = st.lists(
    st.sampled_from(["place"] * 8 + ["cancel", "reduce", "cancel_many"]).flatmap(
        {
            "place": place_cmd,
            "cancel": cancel_cmd,
            "reduce": reduce_cmd,
            "cancel_many": cancel_many_cmd,
        }.get
    ),
    min_size=5,
    max_size=60,
)


def reference_market() -> ReferenceMarket:
    m = BTC_USD
    return ReferenceMarket(
        m.tick, m.lot, m.min_size, m.max_notional, m.mult, m.maker_fee_bps, m.taker_fee_bps
    )


async def run_engine(
    redis: Any, cmd: dict[str, Any], oid: str, ids: list[str], now: int
) -> tuple[str, Any]:
    try:
        if cmd["op"] == "place":
            req = order_request(cmd)
            out = await M.place(redis, oid, cmd["user"], req, now)
            return "ok", (out.kind, out.events if out.kind == "new" else [])
        if cmd["op"] == "cancel":
            out = await M.cancel(redis, MKT, pick(ids, cmd), cmd["user"], now)
            return "ok", out.events
        if cmd["op"] == "reduce":
            out = await M.reduce(redis, MKT, pick(ids, cmd), cmd["user"], cmd["lots"] * LOT, now)
            return "ok", out.events
        events, _ = await M.cancel_many(redis, MKT, cmd["user"], ids, now)
        return "ok", events
    except EngineError as exc:
        return "error", exc.code


def run_reference(
    ref: ReferenceMarket, cmd: dict[str, Any], oid: str, ids: list[str], now: int
) -> tuple[str, Any]:
    try:
        if cmd["op"] == "place":
            r = order_request(cmd)
            kind, events = ref.place(
                oid,
                cmd["user"],
                r.side,
                r.type,
                r.time_in_force,
                r.post_only,
                r.price,
                r.amount,
                r.quote_amount,
                r.stp,
                r.client_order_id,
                now,
            )
            return "ok", (kind, events)
        if cmd["op"] == "cancel":
            return "ok", ref.cancel(pick(ids, cmd), cmd["user"], now)
        if cmd["op"] == "reduce":
            return "ok", ref.reduce(pick(ids, cmd), cmd["user"], cmd["lots"] * LOT, now)
        return "ok", ref.cancel_many(cmd["user"], ids, now)
    except RefError as exc:
        return "error", exc.code


def order_request(cmd: dict[str, Any]) -> OrderRequest:
    price = cmd["price"] + (1 if cmd["off_tick"] else 0)
    if cmd["type"] == "market":
        if cmd["side"] == "buy":
            return OrderRequest(
                MKT,
                "buy",
                "market",
                0,
                0,
                "IOC",
                quote_amount=cmd["budget"] * 100 + 1,
                stp=cmd["stp"],
                client_order_id=cmd["cid"],
            )
        return OrderRequest(
            MKT,
            "sell",
            "market",
            cmd["lots"] * LOT,
            0,
            "IOC",
            stp=cmd["stp"],
            client_order_id=cmd["cid"],
        )
    return OrderRequest(
        MKT,
        cmd["side"],
        "limit",
        cmd["lots"] * LOT,
        price,
        cmd["tif"],
        post_only=cmd["po"] and cmd["tif"] == "GTC",
        stp=cmd["stp"],
        client_order_id=cmd["cid"],
    )


def pick(ids: list[str], cmd: dict[str, Any]) -> str:
    return ids[cmd["pick"] % len(ids)] if ids else "none"


async def check_invariants(redis: Any, ref: ReferenceMarket) -> None:
    snap = await M.depth(redis, MKT, 1000)
    expected = ref.depth()
    assert snap.bids == expected["buy"] and snap.asks == expected["sell"]
    if snap.bids and snap.asks:
        assert snap.bids[0][0] < snap.asks[0][0], "crossed book"
    # depth equals the sum of the resting orders' remaining sizes
    for side_key, levels in (("bids", snap.bids), ("asks", snap.asks)):
        sums: dict[int, int] = {}
        for member in await redis.zrange(f"{{m:{MKT}}}:{side_key}", 0, -1):
            order = await M.get_order(redis, MKT, member.decode().split("|")[1])
            assert order is not None and order.status in ("NEW", "PARTIALLY_FILLED")
            sums[order.price] = sums.get(order.price, 0) + order.amount - order.filled
        assert sorted(sums.items()) == sorted(levels)
    # seq contiguous over the whole stream
    seqs = []
    for _, fields in await redis.xrange(keys.market_stream(MKT)):
        seqs += [e["seq"] for e in orjson.loads(fields[b"e"])]
    assert seqs == list(range(1, len(seqs) + 1))
    assert snap.seq == len(seqs) == ref.seq


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cmds=commands)
async def test_engine_matches_reference(redis, cmds):
    await redis.flushdb()
    await new_market(redis)
    ref = reference_market()
    ids: list[str] = []
    for n, cmd in enumerate(cmds, start=1):
        oid = f"o{n}"
        got = await run_engine(redis, cmd, oid, ids, 100 + n)
        want = run_reference(ref, cmd, oid, ids, 100 + n)
        assert got == want, (cmd, got, want)
        if cmd["op"] == "place" and got[0] == "ok":
            ids.append(oid)
        await check_invariants(redis, ref)
