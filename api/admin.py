"""Admin accounts from the command line.

    python -m api.admin create --email admin@example.com [--password ...]
    python -m api.admin list

``create`` makes the account (or turns an existing one into an admin with that
password, revoking its older tokens). Without ``--password`` it reads
``HFTX_ADMIN_PASSWORD`` or asks on the terminal. Needs PostgreSQL (and Redis, to
revoke tokens of an existing account).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from types import SimpleNamespace
from typing import Any

from api.auth import TokenVersions, ensure_admin
from api.db import Database
from api.errors import ApiError
from api.users import Users


async def _create(settings: Any, email: str, password: str) -> str:
    import redis.asyncio as aredis

    db = Database(settings.database_url, max_size=2, timeout=10.0)
    await db.open()
    redis = aredis.Redis.from_url(settings.redis_url)
    try:
        users = Users(db)
        node = SimpleNamespace(users=users, versions=TokenVersions(redis, users))
        user = await ensure_admin(node, email, password)  # type: ignore[arg-type]
        return user.id
    finally:
        await redis.aclose()
        await db.close()


async def _list(settings: Any) -> list[Any]:
    db = Database(settings.database_url, max_size=1, timeout=10.0)
    await db.open()
    try:
        return await Users(db).page(1000)
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    from ops.settings import get_settings

    parser = argparse.ArgumentParser(
        prog="python -m api.admin",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create an admin (or promote an account)")
    create.add_argument("--email", required=True, help="the admin's e-mail")
    create.add_argument(
        "--password", default=None, help="default: HFTX_ADMIN_PASSWORD, else asked for"
    )
    sub.add_parser("list", help="list accounts")
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        if args.command == "create":
            password = args.password or os.environ.get("HFTX_ADMIN_PASSWORD")
            if not password:
                password = getpass.getpass("password: ")
            user_id = asyncio.run(_create(settings, args.email, password))
            print(f"admin {args.email} is user {user_id}")
        else:
            for user in asyncio.run(_list(settings)):
                print(f"{user.id}\t{user.role}\t{user.email}")
    except ApiError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
