"""Failed-login throttling: per (e-mail, IP) pair, and per IP across e-mails."""

from __future__ import annotations

import fakeredis
import pytest

from api.errors import ApiError
from api.ratelimit import LoginThrottle


@pytest.fixture
def throttle() -> LoginThrottle:
    return LoginThrottle(fakeredis.FakeAsyncRedis(), per_email=3, per_ip=5, window_s=60)


async def refused(throttle: LoginThrottle, email: str, ip: str) -> bool:
    try:
        await throttle.check(email, ip)
    except ApiError as err:
        assert err.code == "RATE_LIMITED"
        return True
    return False


async def test_one_account_is_locked_after_its_failures_only(throttle: LoginThrottle) -> None:
    for _ in range(3):
        assert not await refused(throttle, "a@x.io", "1.1.1.1")
        await throttle.failed("a@x.io", "1.1.1.1")
    assert await refused(throttle, "a@x.io", "1.1.1.1")
    assert not await refused(throttle, "b@x.io", "1.1.1.1")  # another account, same IP
    assert not await refused(throttle, "a@x.io", "2.2.2.2")  # same account, another IP


async def test_an_ip_failing_on_many_accounts_is_locked_for_all(throttle: LoginThrottle) -> None:
    for i in range(5):
        await throttle.failed(f"u{i}@x.io", "1.1.1.1")
    assert await refused(throttle, "fresh@x.io", "1.1.1.1")
    assert not await refused(throttle, "fresh@x.io", "2.2.2.2")


async def test_a_success_clears_the_pair(throttle: LoginThrottle) -> None:
    for _ in range(2):
        await throttle.failed("a@x.io", "1.1.1.1")
    await throttle.succeeded("a@x.io", "1.1.1.1")
    await throttle.failed("a@x.io", "1.1.1.1")
    assert not await refused(throttle, "a@x.io", "1.1.1.1")
