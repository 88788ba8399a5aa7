"""analytics CLI: how it reads times, its refusals."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from analytics.cli import main, parse_time


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


def test_a_data_dir_no_exchange_runs_on_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """Without --database-url and with no ./hftx run on HFTX_DATA_DIR, the message says
    so (a demo started with another HFTX_DATA_DIR is the usual cause), and the report
    leaves the data dir alone (no jwt_secret written, not even the directory)."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data_dir = tmp_path / "not-running"
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("HFTX_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HFTX_PG_PORT", str(port))
    assert main(["report", "--market", "BTC-USD"]) == 1
    err = capsys.readouterr().err
    assert f"cannot read PostgreSQL at 127.0.0.1:{port}/postgres" in err
    assert f"no ./hftx run is using the data dir {data_dir} (it has no urls.json)" in err
    assert not data_dir.exists()
