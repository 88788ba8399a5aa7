"""P2P plumbing shared by the facade's parts: Lua calls and their refusals, balance
pushes, notifications and reading trades by their global index.

Pure helpers (``now_ms`` aside) at the top; ``P2PCore`` holds the Redis client and
the per-process settings (``engine.p2p.P2P`` is the class callers use).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import ResponseError

from engine import accounts, notify
from engine.p2p_keys import TRADE_PARTIES, trade_key
from engine.p2p_rules import Trade, notices, trade_from
from engine.pubsub import publish
from engine.settlement import balance_push
from engine.types import Balance, EngineError

log = logging.getLogger("hftx.p2p")

MAX_LIST = 200

ExpiryScheduler = Callable[[str, int], Awaitable[None]]  # (trade id, deadline ms)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _record(raw: dict[Any, Any]) -> dict[str, str]:
    """A hash as read by HGETALL, with text keys and values."""
    return {_text(k): _text(v) for k, v in raw.items()}


def _limit(limit: int) -> int:
    return max(1, min(limit, MAX_LIST))


def _check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.isdigit() or len(value) > 20:
        raise EngineError("UNKNOWN_ORDER", f"unknown {what}")
    return value


def _rid(request_id: str | None) -> str:
    if request_id is None:
        return ""
    accounts._check_id(request_id, "request_id")
    return request_id


_CODE_RE = re.compile(r"^([A-Z][A-Z0-9_]+) (.*)$", re.S)


def _engine_error(exc: ResponseError) -> EngineError:
    """A Lua ``fail(CODE, msg)`` reply as an EngineError (codes may hold digits)."""
    m = _CODE_RE.match(str(exc))
    return EngineError(m.group(1), m.group(2)) if m else EngineError("INTERNAL", str(exc))


def _raise(reply: Any) -> Any:
    if isinstance(reply, ResponseError):
        raise _engine_error(reply)
    if isinstance(reply, Exception):
        raise reply
    return reply


def _balance_of(raw: dict[Any, Any], asset: str) -> Balance:
    """One asset of a ``{u:U}:bal`` hash as read by HGETALL (pure)."""
    get = {_text(k): int(v) for k, v in raw.items()}.get
    return Balance(asset, get(f"{asset}:a", 0), get(f"{asset}:h", 0), get(f"{asset}:e", 0))


@dataclass(frozen=True, slots=True)
class Moved:
    """A shard's balances hash (HGETALL replies) right before and right after a call,
    read in the call's pipeline: on one shard nothing runs between the reads and the
    call but other clients' commands, whose own pushes cover what they change."""

    before: Any
    after: Any

    def moved(self, asset: str) -> bool:
        """Whether ``asset`` changed (a failed read counts as changed: push)."""
        if not isinstance(self.before, dict) or not isinstance(self.after, dict):
            return True
        return _balance_of(self.before, asset) != _balance_of(self.after, asset)


class P2PCore:
    """The Redis client and settings shared by the layers of ``engine.p2p.P2P``."""

    def __init__(
        self,
        redis: Any,
        *,
        scheduler: ExpiryScheduler | None = None,
        notifications: bool = True,
        balance_pushes: bool = True,
    ) -> None:
        self.redis = redis
        self.scheduler = scheduler
        self.notifications = notifications
        self.balance_pushes = balance_pushes
        self._scales: dict[str, int] = {}

    async def scale(self, asset: str) -> int:
        if asset not in self._scales:
            self._scales[asset] = await accounts.asset_scale(self.redis, asset)
        return self._scales[asset]

    # -- Lua calls -------------------------------------------------------------------

    async def _fcall_bal(self, fn: str, keys: list[str], *args: Any) -> tuple[Any, Moved]:
        """(reply, the shard's balances hash right before and right after the call),
        one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys[0])
        pipe.fcall(fn, len(keys), *keys, *args)
        pipe.hgetall(keys[0])
        before, reply, after = await pipe.execute(raise_on_error=False)
        return _raise(reply), Moved(before, after)

    async def _fcall(self, fn: str, keys: list[str], *args: Any) -> Any:
        try:
            return await self.redis.fcall(fn, len(keys), *keys, *args)
        except ResponseError as exc:
            raise _engine_error(exc) from None

    # -- pushes and notices (best effort) ----------------------------------------------

    async def _push_balance(self, user: str, asset: str, bal: Moved) -> None:
        """Publish ``user``'s ``balances`` push of ``asset`` if the call ``bal`` brackets
        moved it (never raises: the balance itself is already right, a lost push only
        delays the client). Each change is pushed once: a replayed or repeated call, a
        move that left the asset where it was (escrow back into an open offer) push
        nothing."""
        if not self.balance_pushes or not bal.moved(asset):
            return
        try:
            if isinstance(bal.after, dict):
                b = _balance_of(bal.after, asset)
            else:
                b = await accounts.balance(self.redis, user, asset)
            push = balance_push(b, await self.scale(asset))
            await publish(self.redis, notify.channel(user), orjson.dumps(push))
        except Exception:
            log.warning("balances push to %s failed", user, exc_info=True)

    async def _notify(self, trade: Trade) -> None:
        if not self.notifications:
            return
        scale = await self.scale(trade.asset)
        for user, kind, message in notices(trade, scale):
            await notify.notify(
                self.redis, user, kind, message, trade.id,
                dedup=f"p2p:{trade.id}:{trade.last_action}",
            )  # fmt: skip

    # -- trades by id ------------------------------------------------------------------

    async def _parties(self, trade_id: str) -> tuple[str, str]:
        _check_id(trade_id, "trade")
        raw = await self.redis.hget(TRADE_PARTIES, trade_id)
        if raw is None:
            raise EngineError("UNKNOWN_ORDER", "unknown trade")
        seller, _, buyer = _text(raw).partition("|")
        return seller, buyer

    async def _read_trade(self, seller: str, trade_id: str) -> Trade | None:
        rec = _record(await self.redis.hgetall(trade_key(seller, trade_id)))
        if not rec or rec.get("status") == "ABORTED":
            return None
        return trade_from(rec)

    async def _trades(self, refs: list[tuple[str, str]]) -> list[Trade]:
        """Trades by ``(seller, trade id)``, skipping missing ones."""
        if not refs:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for seller, tid in refs:
            pipe.hgetall(trade_key(seller, tid))
        out = []
        for raw in await pipe.execute():
            rec = _record(raw)
            if rec and rec.get("status") != "ABORTED":
                out.append(trade_from(rec))
        return out
