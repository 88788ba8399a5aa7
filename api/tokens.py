"""JWT access tokens: HS256 only, required claims, short expiry, token versions.

A token carries ``sub`` (user id), ``role``, ``tv`` (the user's token version at
issue time; logout bumps it, revoking every older token), ``typ`` = ``access``,
``iat``, ``exp``, ``aud`` and ``iss``. Anything else about a token — another
algorithm, a missing claim, a tampered payload — is the same 401 UNAUTHORIZED.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import jwt

from api.errors import ApiError

ALGORITHM = "HS256"
ISSUER = "hftx"
AUDIENCE = "hftx"
TTL_SECONDS = 15 * 60
REQUIRED = ["exp", "iat", "sub", "role", "aud", "iss", "tv", "typ"]
ROLES = ("user", "admin")
_USER_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}\Z")


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: str
    token_version: int
    exp: int

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def unauthorized(message: str = "invalid or expired token") -> ApiError:
    return ApiError("UNAUTHORIZED", message)


class Tokens:
    def __init__(self, secret: str | bytes, ttl: int = TTL_SECONDS) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        if len(key) < 32:
            raise ValueError("the JWT secret must be at least 32 bytes")
        self._key = key
        self.ttl = ttl

    def issue(self, user_id: str, role: str, token_version: int) -> tuple[str, int]:
        """A signed access token and its lifetime in seconds."""
        now = int(time.time())
        claims = {
            "sub": user_id,
            "role": role,
            "tv": token_version,
            "typ": "access",
            "iat": now,
            "exp": now + self.ttl,
            "iss": ISSUER,
            "aud": AUDIENCE,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM), self.ttl

    def verify(self, token: object) -> Principal:
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise unauthorized()
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": REQUIRED, "verify_signature": True},
            )
        except jwt.PyJWTError:
            raise unauthorized() from None
        sub, role, tv, exp = claims["sub"], claims["role"], claims["tv"], claims["exp"]
        if (
            claims["typ"] != "access"
            or not isinstance(sub, str)
            or not _USER_ID.match(sub)
            or role not in ROLES
            or type(tv) is not int
            or type(exp) is not int
            or exp - int(claims["iat"]) > self.ttl
        ):
            raise unauthorized()
        return Principal(sub, role, tv, exp)


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
