"""The PostgreSQL pool of the web node, opened lazily and never on the order path.

The pool opens in the background and keeps retrying, so a node starts and trades
while PostgreSQL is down; routes that need it answer 503 UNAVAILABLE meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from api.errors import ApiError, unavailable

log = logging.getLogger("hftx.db")

# how long a best-effort read (market data completed from history) waits for a
# connection: while PostgreSQL is down the pool would make it wait the full timeout
BEST_EFFORT_S = 0.5


class Database:
    def __init__(self, url: str, max_size: int = 10, timeout: float = 2.0) -> None:
        self.url = url
        self.timeout = timeout
        self.pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            open=False,
            check=AsyncConnectionPool.check_connection,
            reconnect_timeout=3600.0,
            kwargs={"connect_timeout": 3, "application_name": "hftx-web", "autocommit": True},
            name="hftx-web",
        )

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close(timeout=2.0)

    @asynccontextmanager
    async def connection(
        self, timeout: float | None = None
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection (autocommit); 503 UNAVAILABLE if PostgreSQL is down (or no
        connection is free within ``timeout``, default the pool's)."""
        try:
            async with self.pool.connection(timeout=timeout or self.timeout) as conn:
                yield conn
        except ApiError:
            raise
        except (PoolTimeout, psycopg.OperationalError) as exc:
            log.warning("postgresql unavailable: %r", exc)
            raise unavailable() from None
        except psycopg.Error as exc:
            log.error("postgresql error: %r", exc)
            raise ApiError("INTERNAL", "internal error") from None

    async def ping(self) -> bool:
        try:
            async with self.connection() as conn:
                await conn.execute("SELECT 1")
            return True
        except ApiError:
            return False
