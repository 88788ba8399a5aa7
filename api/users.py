"""Users in PostgreSQL (``users`` table of ops/migrations) and e-mail rules."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from api.db import Database
from api.errors import ApiError

_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
_TLD = re.compile(r"^[a-z]{2,63}\Z|^xn--[a-z0-9-]{1,59}\Z")


class EmailTaken(ApiError):
    """Sign-up with a registered e-mail (PROTOCOL.md has no code of its own for it)."""

    def __init__(self) -> None:
        super().__init__("INVALID_PARAM", "this email is already registered")


def normalize_email(raw: str) -> str:
    """Validate and normalise an e-mail address (trimmed, NFKC, lower case)."""
    email = unicodedata.normalize("NFKC", raw.strip()).lower()
    local, at, domain = email.rpartition("@")
    if (
        not at
        or len(email) > 254
        or not 1 <= len(local) <= 64
        or not _LOCAL.match(local)
        or len(domain) > 253
    ):
        raise ApiError("INVALID_PARAM", "email is not a valid address")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(x) for x in labels) or not _TLD.match(labels[-1]):
        raise ApiError("INVALID_PARAM", "email is not a valid address")
    return email


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    role: str
    token_version: int
    password_hash: str
    created_at: datetime | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "user_id": self.id,
            "email": self.email,
            "role": self.role,
            "created_ts": int(self.created_at.timestamp() * 1000) if self.created_at else None,
        }


_COLUMNS = "id::text, email, role, token_version, password_hash, created_at"


def _user(row: Any) -> User:
    return User(*row)


class Users:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, email: str, password_hash: str, role: str = "user") -> User:
        async with self.db.connection() as conn:
            try:
                cur = await conn.execute(
                    f"INSERT INTO users (email, password_hash, role) VALUES (%s, %s, %s)"
                    f" RETURNING {_COLUMNS}",
                    (email, password_hash, role),
                )
            except psycopg.errors.UniqueViolation:
                raise EmailTaken() from None
            row = await cur.fetchone()
        assert row is not None
        return _user(row)

    async def by_email(self, email: str) -> User | None:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM users WHERE lower(email) = lower(%s)", (email,)
            )
            row = await cur.fetchone()
        return _user(row) if row else None

    async def by_id(self, user_id: str) -> User | None:
        if not user_id.isdigit():
            return None
        async with self.db.connection() as conn:
            cur = await conn.execute(f"SELECT {_COLUMNS} FROM users WHERE id = %s", (int(user_id),))
            row = await cur.fetchone()
        return _user(row) if row else None

    async def page(self, limit: int, after_id: int = 0) -> list[User]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM users WHERE id > %s ORDER BY users.id LIMIT %s",
                (after_id, limit),
            )
            rows = await cur.fetchall()
        return [_user(r) for r in rows]

    async def update(
        self, user_id: str, *, password_hash: str | None = None, role: str | None = None
    ) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                "UPDATE users SET password_hash = coalesce(%s, password_hash),"
                " role = coalesce(%s, role) WHERE id = %s",
                (password_hash, role, int(user_id)),
            )

    async def bump_token_version(self, user_id: str) -> int:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "UPDATE users SET token_version = token_version + 1 WHERE id = %s"
                " RETURNING token_version",
                (int(user_id),),
            )
            row = await cur.fetchone()
        if row is None:
            raise ApiError("UNAUTHORIZED", "unknown user")
        return int(row[0])

    async def token_version(self, user_id: str) -> int | None:
        if not user_id.isdigit():
            return None
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT token_version FROM users WHERE id = %s", (int(user_id),)
            )
            row = await cur.fetchone()
        return int(row[0]) if row else None
