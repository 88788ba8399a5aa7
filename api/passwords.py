"""Password hashing: argon2id at OWASP strength (m=19 MiB, t=2, p=1).

Hashing runs in a small dedicated thread pool (``CONCURRENCY`` threads), so
sign-ups and logins never block the event loop nor exhaust memory. Each client
address has at most ``PER_CLIENT`` jobs in that pool at once; its other requests
wait for their turn outside it. Without that, one address sending logins faster than
the pool hashes (about 60 ms each) queued ever more work ahead of everyone else's
login (each job runs to its end even once its request has timed out), so that every
other user's login waited past the request timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from api.errors import ApiError

MIN_LENGTH = 8
MAX_LENGTH = 128
CONCURRENCY = 4
PER_CLIENT = 2  # password jobs of one client address in the pool at once

HASHER = PasswordHasher(
    time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)
T = TypeVar("T")
_pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="argon2")
# A real hash to verify against when the e-mail is unknown (same cost either way).
_DUMMY = HASHER.hash("hftx-dummy-password")


def check_policy(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise ApiError("INVALID_PARAM", f"password must be {MIN_LENGTH} to {MAX_LENGTH} characters")


class _Turns:
    """Per client address, at most PER_CLIENT jobs in the pool; the rest wait in order.

    A job holds its turn until it has run, even when its request gives up (a hashing
    thread cannot be stopped): an address's abandoned work counts against it."""

    def __init__(self) -> None:
        # address -> (its turns, how many of its requests hold or wait for one)
        self._turns: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    def __len__(self) -> int:
        return len(self._turns)

    async def run(self, client: str | None, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        if client is None:  # the node's own work (admin account, demo users)
            return await loop.run_in_executor(_pool, fn, *args)
        turns, users = self._turns.setdefault(client, (asyncio.Semaphore(PER_CLIENT), [0]))
        users[0] += 1

        def leave(_: object = None) -> None:
            users[0] -= 1
            if not users[0]:
                del self._turns[client]

        try:
            await turns.acquire()
        except BaseException:
            leave()
            raise

        def done(_: object = None) -> None:
            turns.release()
            leave()

        try:
            job = loop.run_in_executor(_pool, fn, *args)
        except BaseException:
            done()
            raise
        job.add_done_callback(done)
        return await asyncio.shield(job)


_turns = _Turns()


async def hash_password(password: str, client: str | None = None) -> str:
    """The argon2id hash of ``password``, computed in the pool (``client``: the
    requesting address, which gets its turn among its own requests)."""
    return await _turns.run(client, HASHER.hash, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str, client: str | None = None) -> bool:
    """True if ``password`` matches ``stored``; ``None`` (unknown user) costs the same."""
    return await _turns.run(client, _verify, stored, password)


def needs_rehash(stored: str) -> bool:
    try:
        return HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True
