"""Throwaway real servers (tests, benchmarks): own temp dir, free loopback port.

Thin context managers over ``ops.valkey`` and ``ops.postgres`` (the same launchers
the local runner uses), throwaway flavour: no persistence, no fsync, everything
removed at exit.
Every server is stopped when the ``with`` block ends, whatever happens in it, and
(on Linux) also when the test process itself dies.

    with valkey_server() as url: ...           # redis://127.0.0.1:<port>/0
    with valkey_cluster() as urls: ...          # 3 primaries, cluster_state:ok
    with postgres_server() as url: ...          # postgresql://postgres@127.0.0.1:<port>/postgres
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ops.postgres import start_postgres
from ops.valkey import start_valkey, start_valkey_cluster


@contextmanager
def _temp_dir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as tmp:
        yield Path(tmp)


@contextmanager
def valkey_server() -> Iterator[str]:
    """A standalone Valkey without persistence; yields its URL."""
    with _temp_dir("hftx-valkey-") as tmp:
        server = start_valkey(tmp)
        try:
            yield server.url
        finally:
            server.stop()


@contextmanager
def valkey_cluster(nodes: int = 3) -> Iterator[list[str]]:
    """A Valkey cluster of ``nodes`` primaries, no replicas; yields the node URLs."""
    with _temp_dir("hftx-cluster-") as tmp:
        cluster = start_valkey_cluster(tmp, nodes=nodes)
        try:
            yield cluster.urls
        finally:
            cluster.stop()


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL (fsync off); yields its ``postgresql://`` URL."""
    with _temp_dir("hftx-pg-") as tmp:
        server = start_postgres(tmp / "data", durable=False)
        try:
            yield server.url
        finally:
            server.stop()
