"""A web node puts its settings' ``HFTX_NODE_ID`` in every order id it makes, also
when the value comes from a ``.env`` file rather than the environment."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine import ids
from ops.settings import Settings
from tests.test_p2p_api_support import Api, _fresh_redis, _settings, serve_api

NODE_BITS, SEQ_BITS = 10, 12


def node_of(order_id: str) -> int:
    return (int(order_id) >> SEQ_BITS) & ((1 << NODE_BITS) - 1)


@pytest.fixture
def dotenv_settings(
    valkey_url: str, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Settings read in a directory whose ``.env`` sets ``HFTX_NODE_ID``."""
    for name in list(os.environ):
        if name.startswith("HFTX_"):
            monkeypatch.delenv(name)
    other = ids.node_id()
    wanted = (other + 517) % 1024  # not the id this process drew at random
    urls = _settings(valkey_url, pg_url)
    (tmp_path / ".env").write_text(
        f"HFTX_NODE_ID={wanted}\nREDIS_URL={urls.redis_url}\n"
        f"DATABASE_URL={urls.database_url}\nHFTX_DATA_DIR={tmp_path / 'data'}\n"
    )
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.node_id == wanted and "HFTX_NODE_ID" not in os.environ
    return settings


@pytest.fixture
async def node_api(valkey_url: str, dotenv_settings: Settings) -> AsyncIterator[Api]:
    await _fresh_redis(valkey_url)
    before = ids.node_id()
    try:
        async with serve_api(dotenv_settings) as served:
            yield served
    finally:
        ids.use_node_id(before)


async def test_order_ids_carry_the_node_id_of_the_settings(
    node_api: Api, dotenv_settings: Settings
) -> None:
    user = await node_api.user()
    await node_api.fund(user, "BTC", "1")
    order = await node_api.ok(
        "POST", "/orders", user,
        {"market": "BTC-USD", "side": "sell", "type": "limit", "amount": "0.1",
         "price": "30000.00"},
    )  # fmt: skip
    assert node_of(order["id"]) == dotenv_settings.node_id
