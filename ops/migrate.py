"""Apply ``ops/migrations/NNNN_*.sql`` in order, once each.

``migrate(database_url)`` takes a session advisory lock, so concurrent runners
(several release steps, parallel test fixtures) serialize; each file runs in its
own transaction together with its row in ``schema_migrations``. A file that was
applied and then edited is refused (its checksum changed).

    python -m ops.migrate [DATABASE_URL]
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
LOCK_KEY = 0x68667478_6D696772  # "hftxmigr"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    """The migrations on disk and the ones recorded in the database disagree."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files of ``directory``, ordered by version (pure, no database)."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(f"bad migration file name: {path.name}")
        found.append(Migration(int(match.group(1)), path.name, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return found


def migrate(database_url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; return the names applied by this call."""
    migrations = load_migrations(directory)
    applied_now: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                row[0]: (row[1], row[2])
                for row in conn.execute("SELECT version, name, checksum FROM schema_migrations")
            }
            for m in migrations:
                if m.version in done:
                    if done[m.version][1] != m.checksum:
                        raise MigrationError(f"{m.name} changed after it was applied")
                    continue
                with conn.transaction():
                    conn.execute(m.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum)"
                        " VALUES (%s, %s, %s)",
                        (m.version, m.name, m.checksum),
                    )
                applied_now.append(m.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return applied_now


def applied(database_url: str) -> list[str]:
    """Names of the migrations recorded in the database, in order."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT name FROM schema_migrations ORDER BY version").fetchall()
    return [r[0] for r in rows]


def create_database(server_url: str, name: str) -> str:
    """Create an empty database ``name`` on the server of ``server_url``; its URL.

    For tests and benchmarks that need a database of their own.
    """
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"bad database name {name!r}")
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(server_url)
    params["dbname"] = name
    return make_conninfo("", **params)


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` (disconnecting its sessions) if it exists."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _database_url() -> str:
    try:
        from ops.settings import get_settings

        return str(get_settings().database_url)
    except ImportError:
        url = os.environ.get("DATABASE_URL")
        if not url:
            raise SystemExit("DATABASE_URL is not set") from None
        return url


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m ops.migrate", description="Apply the pending SQL migrations."
    )
    parser.add_argument(
        "database_url", nargs="?", help="postgresql://... (default: DATABASE_URL / the settings')"
    )
    url = parser.parse_args(argv).database_url or _database_url()
    names = migrate(url)
    print(f"applied {len(names)} migration(s): {', '.join(names) or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
