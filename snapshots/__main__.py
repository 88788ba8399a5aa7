"""``python -m snapshots``: snapshot, restore, reconcile, dump.

    python -m snapshots snapshot                 # today's (UTC) snapshot, once per day
    python -m snapshots restore FILE [--force]   # rebuild an empty Redis
    python -m snapshots reconcile [--wait S]     # exit 1 on any difference
    python -m snapshots dump                     # canonical state as JSON (to diff)

``REDIS_URL`` / ``DATABASE_URL`` / ``HFTX_DATA_DIR`` as everywhere (ops.settings),
or ``--redis-url`` / ``--database-url``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any


def _urls(args: argparse.Namespace) -> tuple[str, str, Path]:
    from ops.settings import get_settings

    s = get_settings()
    return (
        args.redis_url or str(s.redis_url),
        args.database_url or str(s.database_url),
        Path(s.data_dir),
    )


async def _run(args: argparse.Namespace) -> int:
    from workers import connect

    redis_url, database_url, data_dir = _urls(args)
    redis: Any = await connect(redis_url)
    try:
        if args.command == "snapshot":
            from engine.functions import ensure_loaded
            from snapshots.snapshot import snapshot_day

            await ensure_loaded(redis)
            info = await snapshot_day(redis, database_url, data_dir)
            state = "written" if info.created else "already taken"
            print(f"snapshot {info.day}: {state} ({info.path}, sha256 {info.checksum})")
            return 0
        if args.command == "restore":
            from snapshots.restore import restore
            from snapshots.snapshot import load_file

            report = await restore(redis, database_url, load_file(args.file), force=args.force)
            print(
                f"restored {len(report.markets)} markets ({report.market_entries} entries"
                f" replayed) and {report.account_entries} account entries"
            )
            for m, seq in sorted(report.markets.items()):
                print(f"  {m}: seq {seq}")
            for w in report.warnings:
                print(f"WARNING {w}")
            return 0
        if args.command == "reconcile":
            from engine.functions import ensure_loaded
            from snapshots.reconcile import reconcile

            await ensure_loaded(redis)
            rep = await reconcile(redis, database_url, wait_s=args.wait)
            print(f"{rep.accounts} accounts, {rep.balances} balances compared")
            for x in rep.mismatches:
                print(f"MISMATCH {x.user} {x.asset} {x.field}: redis {x.redis} ledger {x.ledger}")
            for u in rep.not_drained:
                print(f"NOT DRAINED {u}: its stream position is not in PostgreSQL yet")
            for asset, c in sorted(rep.conservation.items()):
                flag = "ok" if c["balances"] == c["expected"] else "differs (in flight?)"
                print(
                    f"  {asset}: balances {c['balances']} = deposits {c['deposited']}"
                    f" - withdrawn {c['withdrawn']} - in flight {c['in_flight']}: {flag}"
                )
            print("OK" if rep.ok else "FAILED")
            return 0 if rep.ok else 1
        from engine.functions import ensure_loaded
        from snapshots.restore import canonical_dump

        await ensure_loaded(redis)
        json.dump(await canonical_dump(redis), sys.stdout, sort_keys=True, indent=1)
        print()
        return 0
    finally:
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m snapshots", description=__doc__.split("\n")[0])
    p.add_argument("--redis-url", help="default: REDIS_URL, else the embedded Valkey")
    p.add_argument("--database-url", help="default: DATABASE_URL, else the embedded PostgreSQL")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("snapshot", help="take today's snapshot (idempotent per UTC day)")
    r = sub.add_parser("restore", help="rebuild an empty Redis from a snapshot file + events")
    r.add_argument("file", help="a snapshot file, e.g. <data dir>/snapshots/2026-01-31.json.gz")
    r.add_argument("--force", action="store_true", help="write into a non-empty Redis")
    c = sub.add_parser("reconcile", help="balances vs ledger, exactly")
    c.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the drain")
    sub.add_parser("dump", help="canonical state as JSON")
    args = p.parse_args(argv)
    from snapshots.restore import RestoreError

    try:
        return asyncio.run(_run(args))
    except (RestoreError, OSError, ValueError) as exc:
        if args.command != "restore":
            raise
        # a missing or damaged file, a Redis that is not empty: say so, no traceback
        print(f"error: {str(exc).replace('force=True', '--force')}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
