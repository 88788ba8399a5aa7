"""An HTTP request that waits on a hung PostgreSQL is answered 503 at the request
timeout, not when psycopg gives up cancelling the query (api.routing.within_deadline)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.postgres import start_postgres
from tests.test_p2p_api_support import LIMITS, _fresh_redis, _settings, serve_api


def _tree(pid: int) -> list[int]:
    """``pid`` and its children (the postmaster's backends)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    """PostgreSQL hung, not down: every process of it stopped, its sockets open."""
    pids = _tree(pid)
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A PostgreSQL of this test's own (freezing the session's would stall others)."""
    pg = start_postgres(tmp_path / "pg", durable=False)
    try:
        yield pg.url, pg.process.pid
    finally:
        pg.stop()


async def test_a_hung_database_is_a_503_at_the_request_timeout(valkey_url, own_postgres):
    pg_url, postmaster = own_postgres
    await _fresh_redis(valkey_url)
    limits = dataclasses.replace(LIMITS, request_timeout=1.0)
    async with serve_api(_settings(valkey_url, pg_url), limits) as api:
        body = {"email": "first@deadline.hftx.dev", "password": "a-long-enough-password"}
        assert (await api.http.post("/auth/signup", json=body)).status_code == 201
        with frozen(postmaster):
            started = time.monotonic()
            body = {"email": "second@deadline.hftx.dev", "password": "a-long-enough-password"}
            r = await api.http.post("/auth/signup", json=body)
            waited = time.monotonic() - started
        assert (r.status_code, r.json()["error"]["code"]) == (503, "UNAVAILABLE")
        assert waited < 3.0  # psycopg alone: 1 s, then up to 2 x 5 s cancelling
        # once it is back, the node serves again (the abandoned request did not wedge it)
        for _ in range(50):
            r = await api.http.post("/auth/signup", json=body)
            if r.status_code != 503:
                break
            await asyncio.sleep(0.2)
        assert r.status_code in (201, 409), r.text
