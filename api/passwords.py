"""Password hashing: argon2id at OWASP strength (m=19 MiB, t=2, p=1).

Hashing runs in a small dedicated thread pool (``CONCURRENCY`` threads), so
sign-ups and logins never block the event loop nor exhaust memory.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from api.errors import ApiError

MIN_LENGTH = 8
MAX_LENGTH = 128
CONCURRENCY = 4

HASHER = PasswordHasher(
    time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)
_pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="argon2")
# A real hash to verify against when the e-mail is unknown (same cost either way).
_DUMMY = HASHER.hash("hftx-dummy-password")


def check_policy(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise ApiError("INVALID_PARAM", f"password must be {MIN_LENGTH} to {MAX_LENGTH} characters")


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_pool, HASHER.hash, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """True if ``password`` matches ``stored``; ``None`` (unknown user) costs the same."""
    return await asyncio.get_running_loop().run_in_executor(_pool, _verify, stored, password)


def needs_rehash(stored: str) -> bool:
    try:
        return HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True
