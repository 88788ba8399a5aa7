"""The admin CLI (``python -m api.admin``) against the e2e exchange."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from tests.test_e2e_support import ROOT, Exchange, new_user

pytest_plugins = ["tests.test_e2e_support"]


def cli(exchange: Exchange, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.admin", *args],
        cwd=ROOT, env=exchange.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def all_users(http: Any, token: str) -> list[dict[str, Any]]:
    """Every user, page by page (``after`` = the last user id seen)."""
    out: list[dict[str, Any]] = []
    for _ in range(1000):
        params = {"limit": 1000, "after": int(out[-1]["user_id"]) if out else 0}
        r = await http.get("/admin/users", params=params,
                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert r.status_code == 200, r.text
        if not r.json():
            return out
        out += r.json()
    raise AssertionError("too many users")


async def test_cli_creates_an_admin_and_promotes_a_user(exchange: Exchange) -> None:
    done = cli(exchange, "create", "--email", "Ops@E2E.hftx.dev", "--password", "ops-password-1")
    assert done.returncode == 0, done.stderr
    async with exchange.http("b") as http:
        r = await http.post("/auth/login", json={"email": "ops@e2e.hftx.dev",
                                                 "password": "ops-password-1"})  # fmt: skip
        token = r.json()["access_token"]
        users = await all_users(http, token)  # the session exchange has many users by now
        assert {"email": "ops@e2e.hftx.dev", "role": "admin"}.items() <= next(
            u for u in users if u["email"] == "ops@e2e.hftx.dev"
        ).items()
    user = await new_user(exchange)
    done = cli(exchange, "create", "--email", user.email, "--password", "new-password-1")
    assert done.returncode == 0, done.stderr
    async with exchange.http("a", user.token) as http:  # the old user token is revoked
        assert (await http.get("/balances")).status_code == 401
    assert cli(exchange, "create", "--email", "not-an-email", "--password", "x" * 9).returncode == 1
    assert "ops@e2e.hftx.dev" in cli(exchange, "list").stdout
