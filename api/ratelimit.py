"""Request rate limits: in-memory token buckets per key, and login throttling.

Buckets live in the node's memory (a user's budget is per web node); login
failures are counted in Redis so that every node sees them.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from api.errors import ApiError


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class Limiter:
    """One token bucket per key (user id or client IP)."""

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self.sweep(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)

    def sweep(self, now: float) -> None:
        """Forget full buckets (idle long enough to have refilled)."""
        full = self.burst / self.rate if self.rate else 0.0
        for key in [k for k, b in self._buckets.items() if now - b.stamp >= full]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)


class FloodMeter:
    """Counts refusals of one connection; ``flooding`` once over ``limit`` per window."""

    __slots__ = ("count", "limit", "start", "window")

    def __init__(self, limit: int, window: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self.count = 0
        self.start = 0.0

    def refused(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if now - self.start > self.window:
            self.start = now
            self.count = 0
        self.count += 1
        return self.count > self.limit


class LoginThrottle:
    """Login attempts per (e-mail, IP) and per IP, counted in Redis for a window.

    An attempt is counted *before* its password is checked, and a success takes it
    back: counting failures after the check let concurrent guesses all pass a check
    made before any of them had failed (60 at once tried 39 passwords, not 5)."""

    def __init__(
        self, redis: Any, per_email: int = 5, per_ip: int = 500, window_s: int = 900
    ) -> None:
        self.redis = redis
        self.per_email = per_email
        self.per_ip = per_ip
        self.window_s = window_s

    @staticmethod
    def _keys(email: str, ip: str) -> tuple[str, str]:
        digest = hashlib.sha256(f"{email}|{ip}".encode()).hexdigest()[:32]
        # One hash tag: both keys live in one slot on a cluster (MGET, one pipeline).
        return f"{{login}}:f:{digest}", f"{{login}}:ip:{ip}"

    async def attempt(self, email: str, ip: str) -> None:
        """Count one attempt; RATE_LIMITED (not to be tried) once the pair has had
        ``per_email`` or the IP ``per_ip`` attempts that did not succeed."""
        pair, by_ip = self._keys(email, ip)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(pair)
            pipe.expire(pair, self.window_s, nx=True)
            pipe.incr(by_ip)
            pipe.expire(by_ip, self.window_s, nx=True)
            tries_pair, _, tries_ip, _ = await pipe.execute()
        if int(tries_pair) > self.per_email or int(tries_ip) > self.per_ip:
            raise ApiError("RATE_LIMITED", "too many failed logins, try again later")

    async def succeeded(self, email: str, ip: str) -> None:
        """A right password: the pair starts over, and the IP's count gives the
        attempt back."""
        pair, by_ip = self._keys(email, ip)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(pair)
            pipe.decr(by_ip)
            pipe.expire(by_ip, self.window_s, nx=True)  # never a key without expiry
            await pipe.execute()

    async def undo(self, email: str, ip: str) -> None:
        """Give back an attempt whose password was never checked (a backing service
        failed first): a client retrying through an outage is not locked out."""
        pair, by_ip = self._keys(email, ip)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in (pair, by_ip):
                pipe.decr(key)
                pipe.expire(key, self.window_s, nx=True)
            await pipe.execute()
