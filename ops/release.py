"""The release step: make Redis and PostgreSQL ready for this version of the code.

    python -m ops.release

1. loads the Lua function library (``engine.functions.ensure_loaded``; on every
   primary of a cluster), replacing an older version;
2. applies pending SQL migrations (``ops.migrate.migrate``) when that module exists;
3. registers the default assets and markets (``engine.seed.seed_defaults``) when
   that module exists.

Every step is idempotent, so running it on each deploy (or each ``./hftx run``) is
safe, and concurrent runs serialize (migrations take an advisory lock).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import sys
from dataclasses import dataclass, field

from engine import functions
from workers import connect

log = logging.getLogger("hftx.release")


@dataclass
class ReleaseReport:
    library_version: str
    migrations_applied: list[str] = field(default_factory=list)
    markets_created: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def module_available(name: str) -> bool:
    """Whether module ``name`` can be imported (its parent packages are imported)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


async def release(redis_url: str, database_url: str) -> ReleaseReport:
    """Run the release steps against the given servers."""
    client = await connect(redis_url)
    try:
        report = ReleaseReport(await functions.ensure_loaded(client))
        log.info("lua library hftx version %s loaded", report.library_version)

        if module_available("ops.migrate"):
            migrate = importlib.import_module("ops.migrate").migrate
            report.migrations_applied = await asyncio.to_thread(migrate, database_url)
            log.info(
                "migrations applied: %s", ", ".join(report.migrations_applied) or "none pending"
            )
        else:
            report.skipped.append("ops.migrate")
            log.warning("ops.migrate does not exist yet: no SQL migrations applied")

        if module_available("engine.seed"):
            seed_defaults = importlib.import_module("engine.seed").seed_defaults
            report.markets_created = await seed_defaults(client)
            log.info("markets created: %s", ", ".join(report.markets_created) or "none")
        else:
            report.skipped.append("engine.seed")
            log.warning("engine.seed does not exist yet: no assets or markets seeded")
    finally:
        await client.aclose()
    return report


def main(argv: list[str] | None = None) -> int:
    import argparse

    from ops.settings import get_settings

    argparse.ArgumentParser(
        prog="python -m ops.release",
        description="Load the Lua library, apply SQL migrations and seed the default"
        " markets (idempotent) on REDIS_URL / DATABASE_URL (default: the embedded servers).",
    ).parse_args(argv)
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    asyncio.run(release(settings.redis_url, settings.database_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
