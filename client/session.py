"""Command-line connection options shared by the CLI and the bots."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from client.errors import HftxError
from client.exchange import DEFAULT_URL, HftxClient


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """``--url``, ``--email``, ``--password`` (defaults: ``HFTX_URL``, ``HFTX_EMAIL``,
    ``HFTX_PASSWORD``) and ``--signup``."""
    parser.add_argument(
        "--url",
        default=os.environ.get("HFTX_URL", DEFAULT_URL),
        help=f"exchange base URL (default: HFTX_URL, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--email", default=os.environ.get("HFTX_EMAIL"), help="account e-mail (default: HFTX_EMAIL)"
    )
    parser.add_argument(
        "--password",
        default=os.environ.get("HFTX_PASSWORD"),
        help="account password (default: HFTX_PASSWORD)",
    )
    parser.add_argument(
        "--signup", action="store_true", help="create the account first if it does not exist"
    )


async def open_client(args: argparse.Namespace, *, login: bool = True) -> HftxClient:
    """A client for ``args.url``, logged in when ``login`` (credentials required)."""
    client = HftxClient(args.url)
    if not login:
        return client
    try:
        if not args.email or not args.password:
            raise HftxError(
                "UNAUTHORIZED", "give --email/--password or HFTX_EMAIL/HFTX_PASSWORD", 401
            )
        if args.signup:
            try:
                await client.signup(args.email, args.password)
            except HftxError as exc:
                if not _already_registered(exc):
                    raise  # a short password, e.g.: say so, not "invalid email or password"
        await client.login(args.email, args.password)
    except BaseException:
        await client.close()
        raise
    return client


def _already_registered(exc: HftxError) -> bool:
    """The sign-up refusal of an existing e-mail (docs/protocol.md, "Sign-up errors")."""
    return exc.code == "INVALID_PARAM" and "already registered" in exc.message


def configure_logging(verbose: bool) -> None:
    """Log lines with time and level for a bot; DEBUG with ``-v``; httpx kept quiet."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


def run_program(main: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run a bot's ``main`` coroutine as a program; the exit status.

    0 when it ends or is stopped with Ctrl-C or SIGTERM (``kill``, ``docker stop``,
    systemd), which both cancel ``main`` so that it cancels its orders on the way out;
    1 after ``error: CODE (status): message`` on stderr when it fails with an
    :class:`HftxError` (no or wrong credentials, an unknown market, an exchange that
    cannot be reached), as the CLI prints it, rather than a traceback.
    """

    async def until_terminated() -> None:
        task = asyncio.current_task()
        assert task is not None
        terminated = False

        def terminate() -> None:
            nonlocal terminated
            terminated = True
            task.cancel()

        with contextlib.suppress(NotImplementedError):  # no signal handlers (Windows)
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)
        try:
            await main()
        except asyncio.CancelledError:
            if not terminated:
                raise

    try:
        asyncio.run(until_terminated())
    except HftxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
