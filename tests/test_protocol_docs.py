"""docs/protocol.md names every WebSocket method and HTTP route the web node serves
(a new one without documentation fails here), and documents none that it does not."""

from __future__ import annotations

import re
from pathlib import Path

import api.app  # noqa: F401  # registers the p2p.* methods in METHODS
from api.gateway import METHODS
from api.p2p import routes as p2p_routes
from api.routes import TABLE

DOC = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
ANY_PARAM = re.compile(r"\{[^}/]*\}")


def documented_routes() -> set[str]:
    """``METHOD /path`` of the docs, /api/v1 dropped, path parameters as ``{}``."""
    found = re.findall(r"`(GET|POST|PATCH|PUT|DELETE) (/[^`?\s]*)", DOC)
    # /orders/client:{client_order_id} is the /orders/{order_id} route (api.routes)
    return {
        f"{m} {ANY_PARAM.sub('{}', p.removeprefix('/api/v1')).replace('client:{}', '{}')}"
        for m, p in found
    }


def test_every_ws_method_is_documented() -> None:
    missing = [name for name in METHODS if f"`{name}`" not in DOC]
    assert not missing, f"add to docs/protocol.md: {missing}"


def test_every_http_route_is_documented_and_every_documented_route_exists() -> None:
    served = {f"{r.method} {ANY_PARAM.sub('{}', r.path)}" for r in [*TABLE, *p2p_routes]}
    documented = documented_routes()
    assert not served - documented, f"add to docs/protocol.md: {sorted(served - documented)}"
    # routes outside /api/v1 (ops, the UI, /ws) are documented too but not in the table
    outside = {"GET /healthz", "GET /readyz", "GET /metrics", "GET /", "GET /ws"}
    ghosts = documented - served - outside
    assert not ghosts, f"docs/protocol.md names routes the node does not serve: {sorted(ghosts)}"
