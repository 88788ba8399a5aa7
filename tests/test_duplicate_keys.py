"""A key named twice in one JSON object of a request is refused, over HTTP and WS.

``{"amount": "1", "amount": "2"}`` is ambiguous (a JSON parser keeps one of the two,
usually the last): the node answers ``INVALID_PARAM`` "duplicate key amount" and does
nothing, for every body and every WebSocket frame (envelope and ``params``), keys
compared once unescaped. A ``:`` inside a value (a ``client_order_id`` ``a:b``) is no
duplicate.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from tests.test_p2p_api_support import Api, Socket, User, subscribed

pytest_plugins = ["tests.test_p2p_api_support"]

ORDER = '"market":"BTC-USD","side":"buy","type":"limit","price":"100"'


async def _post(api: Api, path: str, user: User, body: str) -> Any:
    return await api.http.post(
        path, content=body.encode(), headers={**user.auth, "Content-Type": "application/json"}
    )


async def _frame(sock: Socket, text: str) -> dict[str, Any]:
    """Send a raw frame; its answer (the first message that is not a push)."""
    await sock.ws.send(text)
    while True:
        msg = orjson.loads(await asyncio.wait_for(sock.ws.recv(), 10))
        if "status" in msg:
            return msg
        sock.pushes.append(msg)


async def test_a_duplicate_key_in_an_http_body_is_refused(api: Api) -> None:
    user = await api.user()
    await api.fund(user, "USD", "1000")
    for body in (
        "{" + ORDER + ',"amount":"0.01","amount":"2"}',
        "{" + ORDER + ',"amount":"0.01","\\u0061mount":"2"}',  # the same key, escaped
        "{" + ORDER + ',"amount":"0.01","market":"ETH-USD"}',
    ):
        r = await _post(api, "/orders", user, body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "INVALID_PARAM"
        assert r.json()["error"]["message"].startswith("duplicate key ")
    r = await _post(api, "/orders", user, "{" + ORDER + ',"amount":"0.01","amount":"2"}')
    assert r.json()["error"]["message"] == "duplicate key amount"
    transfer = '{"transfer_id":"t1","asset":"USD","amount":"1","amount":"900","to_address":"x"}'
    r = await _post(api, "/transfers", user, transfer)
    assert r.json()["error"]["message"] == "duplicate key amount"
    assert await api.ok("GET", "/orders", user) == []
    assert await api.free(user, "USD") == "1000.00000000"
    # no duplicate, a ":" in a value: placed
    placed = await _post(
        api, "/orders", user, "{" + ORDER + ',"amount":"0.01","client_order_id":"a:b:c"}'
    )
    assert placed.status_code == 200, placed.text
    assert placed.json()["client_order_id"] == "a:b:c"


async def test_a_duplicate_key_in_a_websocket_frame_is_refused(api: Api) -> None:
    user = await api.user()
    await api.fund(user, "USD", "1000")
    async with subscribed(api, [user], "balances") as (ws,):
        place = '{"id":7,"method":"order.place","params":{' + ORDER
        answer = await _frame(ws, place + ',"amount":"0.01","amount":"2"}}')
        assert (answer["id"], answer["status"]) == (7, 400)
        assert answer["error"] == {"code": "INVALID_PARAM", "message": "duplicate key amount"}
        # in the envelope too; an id given twice answers with id null
        answer = await _frame(ws, '{"id":8,"method":"ping","method":"order.cancel_all"}')
        assert (answer["id"], answer["error"]["message"]) == (8, "duplicate key method")
        answer = await _frame(ws, '{"id":9,"id":10,"method":"ping"}')
        assert (answer["id"], answer["error"]["message"]) == (None, "duplicate key id")
        answer = await _frame(ws, place + ',"amount":"0.01"},"params":{}}')
        assert answer["error"]["message"] == "duplicate key params"
        assert await ws.ok("orders.open", {}) == []
        answer = await _frame(ws, place + ',"amount":"0.01","client_order_id":"a:1"}}')
        assert answer["status"] == 200, answer
        assert answer["result"]["client_order_id"] == "a:1"
