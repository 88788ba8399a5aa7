"""analytics CLI: where it finds the database, how it reads times."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.cli import database_url, main, parse_time
from ops.settings import Settings


def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("HFTX_PG_PORT", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(data_dir=tmp_path)


def test_database_url_finds_the_running_embedded_postgres_on_its_actual_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    s = settings(tmp_path, monkeypatch)
    assert database_url(s) == "postgresql://postgres@127.0.0.1:5490/postgres"  # not running
    (tmp_path / "pg").mkdir()
    (tmp_path / "pg" / "postmaster.pid").write_text(f"4242\n{tmp_path}/pg\n1795665614\n36203\n")
    assert database_url(s) == "postgresql://postgres@127.0.0.1:36203/postgres"


def test_database_url_from_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "pg").mkdir()
    (tmp_path / "pg" / "postmaster.pid").write_text("4242\nx\n1\n36203\n")
    s = settings(tmp_path, monkeypatch, DATABASE_URL="postgresql://u:p@db.example:5433/hftx")
    assert database_url(s) == "postgresql://u:p@db.example:5433/hftx"


def test_times_are_iso_utc_or_milliseconds():
    assert parse_time("1795665614000") == 1795665614000
    assert parse_time("2026-11-26T04:00:00") == parse_time("2026-11-26T04:00:00+00:00")
    assert parse_time("2026-11-26T05:00:00+01:00") == parse_time("2026-11-26T04:00:00Z")


def test_bad_arguments_exit_with_usage(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exc:
        main(["report", "--market", "BTC-USD", "--since", "yesterday"])
    assert exc.value.code == 2
    assert "not a time: 'yesterday'" in capsys.readouterr().err


def test_unreachable_database_is_a_clear_error(capsys: pytest.CaptureFixture[str]):
    url = "postgresql://postgres:secret@127.0.0.1:1/postgres"
    assert main(["report", "--market", "BTC-USD", "--database-url", url]) == 1
    err = capsys.readouterr().err
    assert "cannot read PostgreSQL at 127.0.0.1:1/postgres" in err and "secret" not in err
