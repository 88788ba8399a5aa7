"""How far the workers behind the engine are, per market, read from Redis when
``/metrics`` is scraped: the settler (balances) and the drain (history).

The settler's lag is the time between the market stream's newest entry and the last
one the settler applied (``{m:X}:stl``); the drain's backlog is what its consumer
group has not acknowledged yet (acknowledged = committed to PostgreSQL), and the age
of the oldest such entry. Entry ids carry the engine's milliseconds, so no clock of
this node is involved except for the drain's age. A market whose settler never ran
has no settler gauge; a scrape never fails because Redis is slow or down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from redis.exceptions import RedisError

from engine import registry
from workers import streams

log = logging.getLogger("hftx.metrics")

SCRAPE_BUDGET_S = 1.0


@dataclass(frozen=True, slots=True)
class MarketPipeline:
    """One market's backlog behind the engine (None: not known)."""

    market: str
    settler_lag_s: float | None
    drain_backlog: int | None
    drain_age_s: float | None


def market_pipeline(
    market: str,
    last_id: str | None,
    settler_position: str | None,
    drain_group: streams.GroupInfo | None,
    oldest_unacked_ms: int | None,
    now_ms: int,
) -> MarketPipeline:
    """The gauges of one market from what Redis said (pure)."""
    settler_lag = None
    if settler_position is not None:
        applied, newest = streams.parse_id(settler_position), streams.parse_id(last_id or "0-0")
        settler_lag = max(0, newest[0] - applied[0]) / 1000 if applied < newest else 0.0
    backlog = age = None
    if drain_group is not None:
        backlog = drain_group.pending + (drain_group.lag or 0)
        age = 0.0
        if backlog and oldest_unacked_ms is not None:
            age = max(0, now_ms - oldest_unacked_ms) / 1000
    return MarketPipeline(market, settler_lag, backlog, age)


async def read(redis: Any) -> list[MarketPipeline]:
    """Every market's pipeline state, in a few pipelined round trips."""
    markets = await registry.market_ids(redis)
    stream_keys = [streams.market_stream(m) for m in markets]
    last = await streams.last_ids(redis, stream_keys)
    groups = await streams.groups_many(redis, stream_keys)
    pipe = redis.pipeline(transaction=False)
    for s in stream_keys:
        pipe.get(streams.settler_position_key(s))
    positions = await pipe.execute(raise_on_error=False)
    now = int(time.time() * 1000)
    out = []
    for market, s, pos in zip(markets, stream_keys, positions, strict=True):
        group = next((g for g in groups.get(s, []) if g.name == streams.DRAIN_GROUP), None)
        oldest = None
        if group is not None and (group.pending or group.lag):
            oldest = (await streams.lag(redis, s, streams.DRAIN_GROUP))[1]
        position = None if pos is None or isinstance(pos, Exception) else streams.text(pos)
        out.append(market_pipeline(market, last.get(s), position, group, oldest, now))
    return out


class PipelineGauges:
    """The gauges in a node's registry, refreshed by :meth:`refresh` before a scrape."""

    def __init__(self, registry_: CollectorRegistry) -> None:
        r = registry_
        self.settler_lag = Gauge(
            "hftx_settler_lag_seconds",
            "Engine time between a market stream's newest entry and the settler's position",
            ["market"],
            registry=r,
        )
        self.drain_backlog = Gauge(
            "hftx_drain_backlog_entries",
            "Market stream entries not yet committed to PostgreSQL by the drain",
            ["market"],
            registry=r,
        )
        self.drain_age = Gauge(
            "hftx_drain_backlog_age_seconds",
            "Age of the oldest market stream entry the drain has not committed",
            ["market"],
            registry=r,
        )

    async def refresh(self, redis: Any) -> None:
        try:
            async with asyncio.timeout(SCRAPE_BUDGET_S):
                states = await read(redis)
        except (RedisError, OSError, TimeoutError) as exc:
            log.info("pipeline metrics not refreshed: %r", exc)
            return
        for gauge in (self.settler_lag, self.drain_backlog, self.drain_age):
            gauge.clear()
        for s in states:
            if s.settler_lag_s is not None:
                self.settler_lag.labels(s.market).set(s.settler_lag_s)
            if s.drain_backlog is not None:
                self.drain_backlog.labels(s.market).set(s.drain_backlog)
            if s.drain_age_s is not None:
                self.drain_age.labels(s.market).set(s.drain_age_s)
