"""Login throttling: attempts per (e-mail, IP) pair, and per IP across e-mails, counted
before the password is checked (a success gives its attempt back)."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest

from api.errors import ApiError
from api.ratelimit import LoginThrottle


@pytest.fixture
def throttle() -> LoginThrottle:
    return LoginThrottle(fakeredis.FakeAsyncRedis(), per_email=3, per_ip=5, window_s=60)


async def refused(throttle: LoginThrottle, email: str, ip: str) -> bool:
    """One attempt: True when it is refused (not to be tried)."""
    try:
        await throttle.attempt(email, ip)
    except ApiError as err:
        assert err.code == "RATE_LIMITED"
        return True
    return False


async def test_one_account_is_locked_after_its_failures_only(throttle: LoginThrottle) -> None:
    for _ in range(3):
        assert not await refused(throttle, "a@x.io", "1.1.1.1")  # each a failure
    assert await refused(throttle, "a@x.io", "1.1.1.1")
    assert not await refused(throttle, "b@x.io", "1.1.1.1")  # another account, same IP
    assert not await refused(throttle, "a@x.io", "2.2.2.2")  # same account, another IP


async def test_an_ip_failing_on_many_accounts_is_locked_for_all(throttle: LoginThrottle) -> None:
    for i in range(5):
        assert not await refused(throttle, f"u{i}@x.io", "1.1.1.1")
    assert await refused(throttle, "fresh@x.io", "1.1.1.1")
    assert not await refused(throttle, "fresh@x.io", "2.2.2.2")


async def test_a_success_clears_the_pair_and_is_not_an_ip_failure(
    throttle: LoginThrottle,
) -> None:
    for _ in range(2):
        assert not await refused(throttle, "a@x.io", "1.1.1.1")
    assert not await refused(throttle, "a@x.io", "1.1.1.1")
    await throttle.succeeded("a@x.io", "1.1.1.1")
    for _ in range(3):
        assert not await refused(throttle, "a@x.io", "1.1.1.1")
    assert await refused(throttle, "a@x.io", "1.1.1.1")
    for i in range(20):  # logins that succeed never lock the IP
        assert not await refused(throttle, f"ok{i}@x.io", "3.3.3.3")
        await throttle.succeeded(f"ok{i}@x.io", "3.3.3.3")


async def test_concurrent_attempts_cannot_pass_before_failures_are_counted(
    throttle: LoginThrottle,
) -> None:
    outcomes = await asyncio.gather(*(refused(throttle, "a@x.io", "1.1.1.1") for _ in range(20)))
    assert outcomes.count(False) == 3


async def test_an_attempt_undone_is_not_counted(throttle: LoginThrottle) -> None:
    for _ in range(10):
        assert not await refused(throttle, "a@x.io", "1.1.1.1")
        await throttle.undo("a@x.io", "1.1.1.1")
