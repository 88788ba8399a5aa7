"""Authentication: sign-up, login, logout, token refresh, and the checks of every
authenticated request (HTTP bearer header or the WebSocket ``auth`` method).

Token versions (``users.token_version``) revoke tokens: logout bumps the version
in PostgreSQL and in Redis (``hftx:tv:<user>``) and announces it on ``hftx:auth``
so every node drops older tokens at once. The hot path reads a short-lived
in-process cache backed by Redis, never PostgreSQL (except on a cold miss).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from api import passwords
from api.errors import ApiError
from api.schemas import Credentials, parse
from api.tokens import Principal, bearer, unauthorized
from api.users import EmailTaken, User, normalize_email
from engine.pubsub import publish

if TYPE_CHECKING:
    from api.node import Node

log = logging.getLogger("hftx.auth")

AUTH_CHANNEL = "hftx:auth"
VERSION_CACHE_S = 2.0


def version_key(user_id: str) -> str:
    return f"hftx:tv:{user_id}"


class TokenVersions:
    """user id -> current token version: local cache (2 s) <- Redis <- PostgreSQL."""

    def __init__(self, redis: Any, users: Any, max_users: int = 200_000) -> None:
        self.redis = redis
        self.users = users
        self.max_users = max_users  # then the cache starts over (entries live 2 s anyway)
        self._cache: dict[str, tuple[int, float]] = {}

    def __len__(self) -> int:
        return len(self._cache)

    async def get(self, user_id: str) -> int:
        hit = self._cache.get(user_id)
        now = time.monotonic()
        if hit is not None and now - hit[1] < VERSION_CACHE_S:
            return hit[0]
        raw = await self.redis.get(version_key(user_id))
        if raw is None:
            version = await self.users.token_version(user_id)
            if version is None:
                raise unauthorized("unknown user")
            await self.redis.set(version_key(user_id), version)
        else:
            version = int(raw)
        self._put(user_id, version, now)
        return version

    def learn(self, user_id: str, version: int) -> None:
        """A version heard of: a login here, or a revocation announced by any node
        (for users who may never use this node: bounded like the reads)."""
        self._put(user_id, version, time.monotonic())

    def _put(self, user_id: str, version: int, now: float) -> None:
        if len(self._cache) >= self.max_users and user_id not in self._cache:
            self._cache.clear()
        self._cache[user_id] = (version, now)

    def forget_all(self) -> None:
        self._cache.clear()

    async def bump(self, user_id: str) -> int:
        version = await self.users.bump_token_version(user_id)
        await self.redis.set(version_key(user_id), version)
        self.learn(user_id, version)
        await publish(self.redis, AUTH_CHANNEL, f"{user_id}:{version}")
        return version


async def authenticate(node: Node, token: object) -> Principal:
    """A valid, unrevoked token's principal; else 401 UNAUTHORIZED."""
    principal = node.tokens.verify(token)
    if await node.versions.get(principal.user_id) != principal.token_version:
        raise unauthorized("token revoked")
    return principal


async def http_principal(node: Node, request: Request) -> Principal:
    token = bearer(request.headers.get("authorization"))
    if token is None:
        raise ApiError("UNAUTHORIZED", "missing bearer token")
    return await authenticate(node, token)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def login_reply(node: Node, user: User) -> dict[str, Any]:
    token, ttl = node.tokens.issue(user.id, user.role, user.token_version)
    return {"access_token": token, "token_type": "bearer", "expires_in": ttl}


async def signup(node: Node, body: Any, ip: str) -> dict[str, Any]:
    creds = parse(Credentials, body)
    email = normalize_email(creds.email)
    passwords.check_policy(creds.password)
    if not node.signup_limiter.allow(ip):
        raise ApiError("RATE_LIMITED", "too many sign-ups from this address, try later")
    user = await node.users.create(email, await passwords.hash_password(creds.password, ip))
    await node.redis.set(version_key(user.id), user.token_version)
    for hook in node.signup_hooks:
        try:
            await hook(user)
        except Exception:
            log.exception("sign-up hook failed for user %s", user.id)
    return {"user_id": user.id}


async def login(node: Node, body: Any, ip: str) -> dict[str, Any]:
    creds = parse(Credentials, body)
    try:
        email = normalize_email(creds.email)
    except ApiError:
        raise ApiError("UNAUTHORIZED", "invalid email or password") from None
    if not 1 <= len(creds.password) <= passwords.MAX_LENGTH:
        raise ApiError("UNAUTHORIZED", "invalid email or password")
    await node.login_throttle.attempt(email, ip)  # counted before the check: no race
    try:
        user = await node.users.by_email(email)
        stored = user.password_hash if user else None
        ok = await passwords.verify_password(stored, creds.password, ip)
    except Exception:  # no password was checked (PostgreSQL down...): not an attempt
        await node.login_throttle.undo(email, ip)
        raise
    if user is None or not ok:
        raise ApiError("UNAUTHORIZED", "invalid email or password")
    await node.login_throttle.succeeded(email, ip)
    if passwords.needs_rehash(user.password_hash):
        await node.users.update(
            user.id, password_hash=await passwords.hash_password(creds.password, ip)
        )
    await node.redis.set(version_key(user.id), user.token_version)
    node.versions.learn(user.id, user.token_version)
    return login_reply(node, user)


async def logout(node: Node, principal: Principal) -> dict[str, Any]:
    await node.versions.bump(principal.user_id)
    return {}


async def refresh(node: Node, principal: Principal) -> dict[str, Any]:
    """A fresh token for a still valid one (same version: logout revokes both)."""
    token, ttl = node.tokens.issue(principal.user_id, principal.role, principal.token_version)
    return {"access_token": token, "token_type": "bearer", "expires_in": ttl}


async def ensure_admin(node: Node, email: str, password: str) -> User:
    """Create the admin account, or make the existing account an admin with this password."""
    email = normalize_email(email)
    passwords.check_policy(password)
    user = await node.users.by_email(email)
    if user is None:
        try:
            return await node.users.create(
                email, await passwords.hash_password(password), role="admin"
            )
        except EmailTaken:
            user = await node.users.by_email(email)
            assert user is not None
    same = await passwords.verify_password(user.password_hash, password)
    if user.role != "admin" or not same:
        await node.users.update(
            user.id,
            role="admin",
            password_hash=None if same else await passwords.hash_password(password),
        )
        await node.versions.bump(user.id)
    return user
