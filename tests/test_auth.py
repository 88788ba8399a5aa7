"""Access tokens and passwords: every forged, expired or misused token is refused."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from api import passwords
from api.auth import TokenVersions
from api.errors import ApiError
from api.tokens import Tokens, bearer

SECRET = "s" * 64
tokens = Tokens(SECRET)


def claims(**change: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": "42", "role": "user", "tv": 0, "typ": "access",
        "iat": now, "exp": now + 600, "iss": "hftx", "aud": "hftx",
    }  # fmt: skip
    base.update(change)
    return {k: v for k, v in base.items() if v is not None}


def refused(token: Any) -> None:
    with pytest.raises(ApiError) as info:
        tokens.verify(token)
    assert (info.value.code, info.value.status) == ("UNAUTHORIZED", 401)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_issued_token_verifies() -> None:
    token, ttl = tokens.issue("42", "admin", 3)
    principal = tokens.verify(token)
    assert (principal.user_id, principal.role, principal.token_version) == ("42", "admin", 3)
    assert ttl == 15 * 60 and principal.is_admin


def test_alg_none_is_refused() -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(role="admin")).encode())
    refused(f"{header}.{payload}.")
    refused(jwt.encode(claims(), None, algorithm="none"))


def test_other_algorithms_and_keys_are_refused() -> None:
    refused(jwt.encode(claims(), "x" * 48, algorithm="HS256"))  # wrong key
    refused(jwt.encode(claims(), SECRET, algorithm="HS512"))  # same key, other alg
    refused(jwt.encode(claims(), SECRET, algorithm="HS384"))


def test_tampered_role_is_refused() -> None:
    token, _ = tokens.issue("42", "user", 0)
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["role"] = "admin"
    refused(f"{header}.{b64(json.dumps(body).encode())}.{signature}")


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "role", "aud", "iss", "tv", "typ"])
def test_every_required_claim(missing: str) -> None:
    refused(jwt.encode(claims(**{missing: None}), SECRET, algorithm="HS256"))


@pytest.mark.parametrize(
    "change",
    [
        {"exp": int(time.time()) - 1},  # expired
        {"iat": int(time.time()) + 3600, "exp": int(time.time()) + 3700},  # issued in the future
        {"exp": int(time.time()) + 86_400},  # longer-lived than the node issues
        {"aud": "other"},
        {"iss": "other"},
        {"typ": "refresh"},  # refresh-style token used as an access token
        {"role": "root"},
        {"sub": "../x"},
        {"sub": 42},
        {"tv": "0"},
    ],
)
def test_misused_claims(change: dict[str, Any]) -> None:
    refused(jwt.encode(claims(**change), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("junk", [None, "", "a.b.c", "x" * 5000, 123, "Bearer"])
def test_junk_tokens(junk: Any) -> None:
    refused(junk)


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError):
        Tokens("short")


def test_bearer_header() -> None:
    assert bearer("Bearer abc") == "abc"
    assert bearer("bearer  abc ") == "abc"
    assert bearer("Basic abc") is None
    assert bearer(None) is None
    assert bearer("Bearer ") is None


async def test_password_hashing_is_argon2id_at_owasp_strength() -> None:
    stored = await passwords.hash_password("correct horse")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await passwords.verify_password(stored, "correct horse")
    assert not await passwords.verify_password(stored, "wrong horse")
    assert not await passwords.verify_password(None, "correct horse")
    assert not await passwords.verify_password("not a hash", "x")
    assert not passwords.needs_rehash(stored)


@pytest.mark.parametrize("length", [0, 7, 129, 10_000])
def test_password_length_policy(length: int) -> None:
    with pytest.raises(ApiError):
        passwords.check_policy("x" * length)
    passwords.check_policy("x" * 8)
    passwords.check_policy("x" * 128)


async def test_token_versions_heard_of_stay_bounded() -> None:
    """Every node hears every revocation (and learns every login): for users who never
    use this node too. Only reads bounded the cache; what was heard of grew without."""
    versions = TokenVersions(redis=None, users=None, max_users=100)
    for n in range(1_000):
        versions.learn(f"user-{n}", n)
        assert len(versions) <= 100
    assert await versions.get("user-999") == 999  # the newest still answered from memory
