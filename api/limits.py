"""Limits of one web node (defaults; each overridable by an ``HFTX_*`` variable)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Limits:
    ws_max_frame: int = 64 * 1024  # bytes of one inbound frame (close 1009 above)
    http_max_body: int = 64 * 1024  # bytes of one request body (413)
    ws_queue_msgs: int = 4096  # outbound messages waiting for one socket (4408 above)
    ws_queue_bytes: int = 8 * 1024 * 1024  # outbound bytes waiting for one socket
    ws_conns_per_user: int = 32  # sockets of one user on one node
    ws_conns_total: int = 20_000  # sockets on one node
    ws_conns_per_ip: int = 1000  # sockets of one client address on one node
    ws_auth_timeout: float = 10.0  # seconds to send ``auth`` after connecting
    user_rate: float = 500.0  # requests/s per user (HTTP and WS together)
    user_burst: float = 1000.0
    ip_rate: float = 100.0  # requests/s per client IP on public routes
    ip_burst: float = 200.0
    flood_refusals: int = 200  # refused requests within one second -> close 4429
    signup_rate: float = 1.0  # sign-ups/s per client IP (after a burst: test suites sign up many)
    signup_burst: float = 100.0
    login_failures_per_email: int = 5  # failed logins per (e-mail, IP) in the window -> 429
    login_failures_per_ip: int = 500  # failed logins per IP in the window -> 429 for all
    login_window: int = 900  # seconds failed logins are counted for
    request_timeout: float = 10.0  # seconds a request may wait (on Redis...): then 503
    http_read_timeout: float = 15.0  # seconds to receive one HTTP request in full, else close
    history_wait: float = 1.0  # seconds a history read waits for the drain (api.catchup)
    settle_wait: float = 1.0  # seconds a balance read or transfer waits for the settler

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Limits:
        env = os.environ if environ is None else environ
        values: dict[str, float | int] = {}
        for f in fields(cls):
            raw = env.get(f"HFTX_{f.name.upper()}")
            if raw:
                values[f.name] = float(raw) if f.type in ("float", float) else int(raw)
        return cls(**values)  # type: ignore[arg-type]
