"""Every balance recomputed from the ledger and compared with Redis, exactly.

For each account, one atomic read (``snap_keys``) gives its balances and the last
entry id of its stream ``{u:U}:ev``: the balances are exactly the effect of the
stream up to that entry. The ledger rows the drain wrote for the entries up to
that id, summed per asset, must give the same available / held / escrow. An
account whose stream the drain has not acknowledged up to that id is waited for,
then reported as not drained: the drain acknowledges an entry only after its rows
are committed, so every entry up to the id is in PostgreSQL once the drain's group
has delivered past it and holds none of them pending (several drain writers may
commit batches of one stream out of order, so the ledger row of the last entry
alone proves nothing about the ones before it).

Also per asset, conservation (meaningful once everything is settled and drained):
the sum of all balances equals deposits minus completed withdrawals minus
transfers sent but not yet credited.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from snapshots.snapshot import ACCOUNTS, decode_dump
from workers.streams import drained_through

FIELDS = ("available", "held", "escrow")
_SUFFIX = {"a": "available", "h": "held", "e": "escrow"}


@dataclass(frozen=True, slots=True)
class Mismatch:
    user: str
    asset: str
    field: str
    redis: int
    ledger: int


@dataclass(slots=True)
class ReconcileReport:
    accounts: int = 0
    balances: int = 0  # (account, asset) pairs compared
    mismatches: list[Mismatch] = field(default_factory=list)
    not_drained: list[str] = field(default_factory=list)
    totals: dict[str, dict[str, int]] = field(default_factory=dict)  # asset -> field -> sum
    conservation: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every balance equals its ledger (the reconcile verdict)."""
        return not self.mismatches and not self.not_drained

    @property
    def conserved(self) -> bool:
        """Per asset, balances = deposits - withdrawals - transfers in flight. Holds
        only once the settler and the drain have caught up (a trade settled for one
        side and not yet for the other is money in flight too)."""
        return all(c["balances"] == c["expected"] for c in self.conservation.values())


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def balances_of(bal: dict[str, str]) -> dict[str, dict[str, int]]:
    """``{ASSET}:a|h|e`` hash -> asset -> field -> amount (pure)."""
    out: dict[str, dict[str, int]] = {}
    for name, value in bal.items():
        asset, _, kind = name.rpartition(":")
        if kind in _SUFFIX:
            out.setdefault(asset, dict.fromkeys(FIELDS, 0))[_SUFFIX[kind]] = int(value)
    return out


def compare(
    user: str, redis_bal: dict[str, dict[str, int]], ledger_bal: dict[str, dict[str, int]]
) -> list[Mismatch]:
    """Every (asset, field) where the two disagree (pure; absent = 0)."""
    out = []
    for asset in sorted(set(redis_bal) | set(ledger_bal)):
        r = redis_bal.get(asset, {})
        g = ledger_bal.get(asset, {})
        for f in FIELDS:
            if r.get(f, 0) != g.get(f, 0):
                out.append(Mismatch(user, asset, f, r.get(f, 0), g.get(f, 0)))
    return out


async def _positions(redis: Any, users: list[str]) -> dict[str, tuple[str | None, dict[str, str]]]:
    """user -> (last stream entry id, balances hash), each read atomically."""
    out = {}
    for u in users:
        bal, ev = f"{{u:{u}}}:bal", f"{{u:{u}}}:ev"
        position, keys = decode_dump(await redis.fcall_ro("snap_keys", 2, bal, ev, ev))
        out[u] = (position or None, keys.get(bal, ["hash", -1, {}])[2])
    return out


async def reconcile(redis: Any, database_url: str, *, wait_s: float = 10.0) -> ReconcileReport:
    """Compare every account's balances with its ledger at the same stream position."""
    report = ReconcileReport()
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        users = {_text(u) for u in await redis.smembers(ACCOUNTS)}
        users |= {r[0] for r in await (await conn.execute(
            "SELECT DISTINCT user_id FROM ledger_entries")).fetchall()}  # fmt: skip
        state = await _positions(redis, sorted(users))
        report.accounts = len(state)
        pos = {u: tuple(int(x) for x in p.split("-")) for u, (p, _) in state.items() if p}
        names = sorted(pos)
        params = [names, [pos[u][0] for u in names], [pos[u][1] for u in names]]
        deadline = time.monotonic() + wait_s
        missing = names
        while True:
            missing = [
                u
                for u in missing
                if not await drained_through(redis, f"{{u:{u}}}:ev", state[u][0] or "")
            ]
            if not missing or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)  # the drain is behind: let it catch up
        report.not_drained = sorted(missing)
        ledger: dict[str, dict[str, dict[str, int]]] = {}
        for u, asset, a, h, e in await (await conn.execute(
            "SELECT l.user_id, l.asset, sum(l.available), sum(l.held), sum(l.escrow)"
            " FROM ledger_entries l JOIN unnest(%s::text[], %s::int8[], %s::int8[]) AS p(u, ms, sq)"
            " ON l.user_id = p.u AND (l.entry_ms, l.entry_seq) <= (p.ms, p.sq)"
            " GROUP BY l.user_id, l.asset", params)).fetchall():  # fmt: skip
            ledger.setdefault(u, {})[asset] = {
                "available": int(a),
                "held": int(h),
                "escrow": int(e),
            }
        for u, (_, bal) in sorted(state.items()):
            if u in report.not_drained:
                continue
            mine = balances_of(bal)
            report.balances += len(set(mine) | set(ledger.get(u, {})))
            report.mismatches += compare(u, mine, ledger.get(u, {}))
            for asset, fields in mine.items():
                t = report.totals.setdefault(asset, dict.fromkeys(FIELDS, 0))
                for f in FIELDS:
                    t[f] += fields[f]
        flows = await (await conn.execute(
            "SELECT asset, sum(CASE WHEN kind = 'deposit' THEN available ELSE 0 END),"
            " sum(CASE WHEN kind = 'withdraw_done' THEN -held ELSE 0 END)"
            " FROM ledger_entries GROUP BY asset")).fetchall()  # fmt: skip
        in_flight: dict[str, int] = dict(await (await conn.execute(
            "SELECT asset, sum(amount) FROM transfers WHERE credited_ts IS NULL"
            " GROUP BY asset")).fetchall())  # fmt: skip
    for asset, deposited, withdrawn in flows:
        total = report.totals.get(asset, dict.fromkeys(FIELDS, 0))
        report.conservation[asset] = {
            "deposited": int(deposited),
            "withdrawn": int(withdrawn),
            "in_flight": int(in_flight.get(asset, 0)),
            "balances": sum(total.values()),
            "expected": int(deposited) - int(withdrawn) - int(in_flight.get(asset, 0)),
        }
    return report
