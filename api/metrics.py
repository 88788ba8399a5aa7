"""Prometheus metrics of one web node (own registry: several apps per process in tests),
followed by the process-wide ones of the default registry (CPU, memory, garbage
collections: ``python_gc_*``, ``process_*``, ``hftx_gc_full_collection_seconds``)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from api.pipeline_metrics import PipelineGauges

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    content_type = CONTENT_TYPE

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_total = Counter(
            "hftx_http_requests", "HTTP requests", ["route", "status"], registry=r
        )
        self.http_seconds = Histogram(
            "hftx_http_request_seconds", "HTTP latency", ["route"], buckets=BUCKETS, registry=r
        )
        self.ws_total = Counter(
            "hftx_ws_requests", "WebSocket requests", ["method", "status"], registry=r
        )
        self.ws_seconds = Histogram(
            "hftx_ws_request_seconds", "WebSocket latency", ["method"], buckets=BUCKETS, registry=r
        )
        self.ws_connections = Gauge("hftx_ws_connections", "Open WebSocket connections", registry=r)
        self.ws_rejects = Counter(
            "hftx_ws_rejected", "WebSocket handshakes refused", ["reason"], registry=r
        )
        self.ws_server_closes = Counter(
            "hftx_ws_server_closes",
            "WebSocket connections the node closed, by close code"
            " (4401 auth, 4408 slow consumer, 4429 flooding, 1012 restart)",
            ["code"],
            registry=r,
        )
        self.catchup_timeouts = Counter(
            "hftx_catchup_timeouts",
            "Reads answered before the drain or settler caught up (api.catchup)",
            ["worker"],
            registry=r,
        )
        self.pipeline = PipelineGauges(r)
        self._http: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self._ws: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def http_request(self, route: str, status: int, seconds: float) -> None:
        pair = self._http.get((route, status))
        if pair is None:
            pair = self._http[(route, status)] = (
                self.http_total.labels(route, str(status)),
                self.http_seconds.labels(route),
            )
        pair[0].inc()
        pair[1].observe(seconds)

    def ws_request(self, method: str, status: int, seconds: float) -> None:
        pair = self._ws.get((method, status))
        if pair is None:
            pair = self._ws[(method, status)] = (
                self.ws_total.labels(method, str(status)),
                self.ws_seconds.labels(method),
            )
        pair[0].inc()
        pair[1].observe(seconds)

    def ws_open(self, delta: int) -> None:
        self.ws_connections.inc(delta)

    def ws_rejected(self, reason: str) -> None:
        self.ws_rejects.labels(reason).inc()

    def ws_server_closed(self, code: int) -> None:
        self.ws_server_closes.labels(str(code)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry) + generate_latest(REGISTRY)
