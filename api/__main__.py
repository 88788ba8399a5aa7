"""``python -m api``: one web node (uvicorn + uvloop + httptools).

On SIGTERM/SIGINT every socket first gets a ``status/shutdown`` push and a 1012
close, then uvicorn's own graceful shutdown runs.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import uvicorn

from api.app import create_app
from api.httpproto import http_protocol
from api.limits import Limits
from api.wsproto import FanoutProtocol
from ops import gc_policy


class Server(uvicorn.Server):
    """uvicorn's server, draining the WebSocket clients before it closes them."""

    app_node: Any = None

    async def shutdown(self, sockets: Any = None) -> None:
        if self.app_node is not None:
            for server in self.servers:
                server.close()
            try:
                await self.app_node.drain()
            except Exception:
                logging.getLogger("hftx.app").exception("drain failed")
        await super().shutdown(sockets=sockets)


class _NoSocketChatter(logging.Filter):
    """Drop uvicorn's per-WebSocket lines ("[accepted]", "connection open/closed")."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        return not ("WebSocket %s" in text or text.startswith("connection "))


def quiet_logs() -> None:
    logging.getLogger("uvicorn.error").addFilter(_NoSocketChatter())
    for name in ("httpx", "client.bots"):  # the demo bots run in-process
        logging.getLogger(name).setLevel(logging.WARNING)


def gc_policy_hook() -> Any:
    """A startup hook applying :mod:`ops.gc_policy` once the node (and the demo, if
    any) has started; it keeps the timer task referenced."""
    tasks: list[Any] = []

    async def hook(node: Any) -> None:
        tasks.append(gc_policy.start())

    return hook


def main(argv: list[str] | None = None) -> None:
    from ops.settings import get_settings

    parser = argparse.ArgumentParser(
        prog="python -m api",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default=None, help="default: HFTX_HOST, else 127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: PORT, else 9001")
    parser.add_argument("--demo", action="store_true", help="demo mode (faucet, demo users, bots)")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.demo:
        settings.demo = True
    logging.basicConfig(
        level=getattr(logging, settings.log_level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    quiet_logs()
    limits = Limits.from_env()
    app = create_app(settings, limits)
    app.state.startup_hooks.append(gc_policy_hook())  # last: freezes what startup made
    config = uvicorn.Config(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        loop="uvloop",
        http=http_protocol(limits.http_read_timeout),  # httptools + a read deadline
        ws=FanoutProtocol,  # uvicorn's websockets-sansio + pre-encoded fan-out frames
        ws_max_size=limits.ws_max_frame,
        ws_max_queue=32,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        ws_per_message_deflate=False,
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=5,
        log_level=settings.log_level.lower(),
        server_header=False,
        # X-Forwarded-For only from the load balancers named (the per-IP limits then
        # count the real clients); from anyone else it would let clients pick their IP
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
    )
    server = Server(config)
    server.app_node = app.state.node
    server.run()


if __name__ == "__main__":
    main()
