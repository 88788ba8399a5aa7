"""The embedded Valkey's fsync policy (``HFTX_VALKEY_APPENDFSYNC``): with ``always``, a
Valkey killed with -9 right after acknowledging writes has every one of them back."""

from __future__ import annotations

import signal
from pathlib import Path

import pydantic
import pytest
import redis

from ops import embedded
from ops.processes import EmbeddedError, free_port
from ops.settings import Settings
from ops.valkey import start_valkey

WRITES = 300


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """An environment where the embedded Valkey is meant (PostgreSQL is not)."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("HFTX_VALKEY_APPENDFSYNC", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/unused")
    monkeypatch.setenv("HFTX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HFTX_VALKEY_PORT", str(free_port()))
    return monkeypatch


def test_the_policy_is_everysec_unless_set_and_only_valkeys_values(
    env: pytest.MonkeyPatch,
) -> None:
    assert Settings().valkey_appendfsync == "everysec"
    env.setenv("HFTX_VALKEY_APPENDFSYNC", "always")
    assert Settings().valkey_appendfsync == "always"
    env.setenv("HFTX_VALKEY_APPENDFSYNC", "sometimes")
    with pytest.raises(pydantic.ValidationError):
        Settings()


def test_with_always_a_kill_9_loses_no_acknowledged_write(env: pytest.MonkeyPatch) -> None:
    env.setenv("HFTX_VALKEY_APPENDFSYNC", "always")
    settings = Settings()
    with embedded.EmbeddedServices(settings) as services:
        valkey = services.valkey
        assert valkey is not None and services.postgres is None
        client = redis.Redis(host=valkey.host, port=valkey.port)
        try:
            assert client.config_get("appendfsync") == {"appendfsync": "always"}
            for _ in range(WRITES):
                client.incr("acknowledged")
        finally:
            client.close()
        valkey.process.proc.send_signal(signal.SIGKILL)
        valkey.process.proc.wait(10)
        again = start_valkey(valkey.directory, port=valkey.port, persistent=True)
        client = redis.Redis(host=again.host, port=again.port)
        try:
            assert client.get("acknowledged") == str(WRITES).encode()
        finally:
            client.close()
            again.stop()


def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    """An orphaned Valkey (its supervisor killed) keeps the usual port, so a new run
    would start on another port over the same append-only file: refused instead."""
    first = start_valkey(tmp_path, persistent=True)
    try:
        with pytest.raises(EmbeddedError, match=f"pid {first.process.pid}"):
            start_valkey(tmp_path, persistent=True)
    finally:
        first.stop()
    again = start_valkey(tmp_path, persistent=True)  # its clean exit removed the pidfile
    again.stop()


def test_a_stale_pidfile_does_not_block_a_start(tmp_path: Path) -> None:
    gone = start_valkey(tmp_path, persistent=True)
    pid = gone.process.pid
    gone.process.proc.send_signal(signal.SIGKILL)  # no clean exit: the pidfile stays
    gone.process.proc.wait()
    assert (tmp_path / "valkey.pid").read_text().strip() == str(pid)
    start_valkey(tmp_path, persistent=True).stop()
