"""``/ws`` asked over plain HTTP (no WebSocket handshake): 426 Upgrade Required with
a JSON error that says to connect with a WebSocket, not a bare 404."""

from __future__ import annotations

import httpx

from tests.test_e2e_support import Exchange, Ws, new_user

pytest_plugins = ["tests.test_e2e_support"]


async def test_a_plain_http_request_to_ws_is_told_to_upgrade(live: Exchange) -> None:
    async with httpx.AsyncClient(base_url=live.nodes["a"], timeout=20) as http:
        for method in ("GET", "POST", "HEAD"):
            r = await http.request(method, "/ws")
            assert r.status_code == 426, (method, r.text)
            assert r.headers["upgrade"] == "websocket", method
            if method != "HEAD":
                error = r.json()["error"]
                assert error["code"] == "UPGRADE_REQUIRED", r.text
                assert "WebSocket" in error["message"], r.text
    # the WebSocket itself is served as before
    ws = await Ws.connect(live.ws_url("a"), (await new_user(live)).token)
    try:
        answer = await ws.request("ping")
        assert answer["status"] == 200, answer
    finally:
        await ws.close()
