"""analytics CLI: how it reads times, its refusals."""

from __future__ import annotations

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
