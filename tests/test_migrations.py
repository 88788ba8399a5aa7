"""Migrations: ordered, once each, safe under concurrent runners; schema invariants."""

from __future__ import annotations

import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from ops import migrate as M


@pytest.fixture
def empty_db(pg_url):
    name = f"t_mig_{uuid.uuid4().hex[:10]}"
    url = M.create_database(pg_url, name)
    yield url
    M.drop_database(pg_url, name)


def test_files_are_numbered_and_ordered():
    ms = M.load_migrations()
    assert [m.version for m in ms] == sorted(m.version for m in ms)
    assert ms[0].name == "0001_init.sql"


def test_concurrent_runners_apply_each_file_once(empty_db):
    names = [m.name for m in M.load_migrations()]
    barrier = threading.Barrier(6)

    def run() -> list[str]:
        barrier.wait()
        return M.migrate(empty_db)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: run(), range(6)))
    applied = [n for r in results for n in r]
    assert sorted(applied) == sorted(names)  # every file by exactly one runner
    assert M.applied(empty_db) == names
    assert M.migrate(empty_db) == []  # idempotent


def test_an_edited_applied_migration_is_refused(empty_db, tmp_path):
    for m in M.load_migrations():
        shutil.copy(M.MIGRATIONS_DIR / m.name, tmp_path / m.name)
    M.migrate(empty_db, tmp_path)
    first = tmp_path / "0001_init.sql"
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(M.MigrationError):
        M.migrate(empty_db, tmp_path)


def test_ledger_is_append_only_even_for_the_owner(empty_db):
    M.migrate(empty_db)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ledger_entries (user_id, entry_ms, entry_seq, idx, leg, kind, asset,"
            " available, held, escrow, ts) VALUES ('u1', 1, 0, 0, 0, 'deposit', 'BTC', 5, 0, 0, 1)"
        )
        for stmt in (
            "UPDATE ledger_entries SET available = 6",
            "DELETE FROM ledger_entries",
            "TRUNCATE ledger_entries",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(stmt)
        assert conn.execute("SELECT available FROM ledger_entries").fetchall() == [(5,)]


def test_application_role_may_insert_but_not_rewrite_the_ledger(empty_db):
    M.migrate(empty_db)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("SET ROLE hftx_app")
        conn.execute(
            "INSERT INTO ledger_entries (user_id, entry_ms, entry_seq, idx, leg, kind, asset,"
            " available, held, escrow, ts) VALUES ('u1', 1, 0, 0, 0, 'deposit', 'BTC', 5, 0, 0, 1)"
        )
        conn.execute(
            "INSERT INTO notifications (user_id, kind, message, ts) VALUES ('u1','k','m',1)"
        )
        conn.execute("UPDATE notifications SET read_ts = 2")  # other tables: full DML
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as exc:
            conn.execute("UPDATE ledger_entries SET held = 1")
        assert "permission denied" in str(exc.value)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM ledger_entries")


def test_emails_are_unique_ignoring_case(empty_db):
    M.migrate(empty_db)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("INSERT INTO users (email, password_hash) VALUES ('Ann@Example.com', 'x')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO users (email, password_hash) VALUES ('ann@example.COM', 'y')")
        role, version = conn.execute("SELECT role, token_version FROM users").fetchone() or ()
        assert (role, version) == ("user", 0)
