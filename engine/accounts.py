"""Typed calls over the account shard (``lua/20_accounts.lua``).

Amounts are integers in minimal units. Refusals raise ``EngineError(code, message)``
with PROTOCOL.md codes; no caller sees a key name or a Lua argument order.
``redis`` is a ``redis.asyncio`` client (single node or cluster).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from redis.exceptions import ResponseError

from engine import addresses, keys
from engine.keys import market_stream
from engine.settlement import CreditOp, SettleOp, encode_ops
from engine.types import Balance, EngineError

ASSETS_KEY = keys.GLOBAL_ASSETS
ACCOUNTS_KEY = "{g}:accounts"  # set of users with an account stream (read by the drain)
WITHDRAWALS_KEY = "{g}:wd"  # withdrawal id -> user (so admins can act by id)
DEPOSITS_KEY = "{g}:dep"  # deposit id -> user: an id credits one account, once
HOLDERS_KEY = "{g}:holders"  # zset: users that may have holds (bumped before each hold)
OUTBOX_KEY = "{g}:outbox"  # zset: users that may have uncredited transfers (bumped before)
OUTBOX_WAKE_KEY = "{g}:outbox:wake"  # list of at most one token: wakes the settler at once

_USER_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}\Z")
_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,36}\Z")
_ASSET_RE = re.compile(r"^[A-Z0-9]{2,10}\Z")
_CODE_RE = re.compile(r"^([A-Z][A-Z_]+) (.*)$", re.S)
MAX_AMOUNT = 2**53 - 1


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def account_keys(user: str) -> list[str]:
    """The five KEYS every account function takes (see lua/20_accounts.lua)."""
    if not _USER_RE.match(user):
        raise EngineError("INVALID_PARAM", "bad user id")
    p = f"{{u:{user}}}:"
    return [p + "bal", p + "holds", p + "cur", p + "ev", p + "ops"]


def account_stream_key(user: str) -> str:
    return f"{{u:{user}}}:ev"


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def engine_error(exc: ResponseError) -> EngineError:
    """Map a Lua ``fail(CODE, msg)`` reply to an EngineError."""
    text = str(exc)
    m = _CODE_RE.match(text)
    if m:
        return EngineError(m.group(1), m.group(2))
    return EngineError("INTERNAL", text)


async def _call(redis: Any, fn: str, keys: Sequence[str], *args: Any) -> Any:
    try:
        return await redis.fcall(fn, len(keys), *keys, *args)
    except ResponseError as exc:
        raise engine_error(exc) from None


def _check_id(value: str, what: str) -> None:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise EngineError("INVALID_PARAM", f"bad {what}")


def _check_amount(amount: int) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise EngineError("INVALID_PARAM", "amount must be a positive integer")
    if amount > MAX_AMOUNT:
        raise EngineError("INVALID_PARAM", "amount too large")


async def asset_scale(redis: Any, asset: str) -> int:
    """Scale of a registered asset; INVALID_PARAM when unknown."""
    if not isinstance(asset, str) or not _ASSET_RE.match(asset):
        raise EngineError("INVALID_PARAM", "bad asset")
    scale = await redis.hget(ASSETS_KEY, asset)
    if scale is None:
        raise EngineError("INVALID_PARAM", f"unknown asset {asset}")
    return int(scale)


# -- orders ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HoldResult:
    """``kind`` new | replay (the order id already held) | duplicate (client order id
    taken: ``existing`` is its ``(market, order_id)``)."""

    kind: Literal["new", "replay", "duplicate"]
    amount: int = 0
    existing: tuple[str, str] | None = None
    balance: Balance | None = None  # the asset's balance right after the hold


async def hold(
    redis: Any,
    user: str,
    order_id: str,
    market: str,
    asset: str,
    amount: int,
    *,
    client_order_id: str = "",
    now: int | None = None,
) -> HoldResult:
    """Move ``amount`` of ``asset`` available -> held for ``order_id`` (idempotent)."""
    keys = account_keys(user)
    _check_amount(amount)
    # The holders index is bumped before the hold (it may only over-report); the
    # three commands (index, hold, read of the balance after it) share one round trip.
    pipe = redis.pipeline(transaction=False)
    pipe.zincrby(HOLDERS_KEY, 1, user)
    pipe.fcall("acct_hold", len(keys), *keys, order_id, market, asset, amount,
               now or now_ms(), client_order_id)  # fmt: skip
    pipe.hmget(keys[0], f"{asset}:a", f"{asset}:h", f"{asset}:e")
    _, reply, (a, h, e) = await pipe.execute(raise_on_error=False)
    if isinstance(reply, ResponseError):
        raise engine_error(reply)
    kind, value = _text(reply[0]), _text(reply[1])
    if kind == "duplicate":
        m, _, oid = value.partition("|")
        return HoldResult("duplicate", 0, (m, oid))
    after = Balance(asset, int(a or 0), int(h or 0), int(e or 0))
    return HoldResult("new" if kind == "new" else "replay", int(value), balance=after)


async def release(redis: Any, user: str, order_id: str, *, now: int | None = None) -> int:
    """Abort the hold of an order that never reached the market; the amount released."""
    keys = account_keys(user)
    return int(await _call(redis, "acct_release", keys, order_id, now or now_ms()))


@dataclass(frozen=True, slots=True)
class HoldRecord:
    order_id: str
    market: str
    asset: str
    amount: int
    ts: int


def _hold_record(order_id: str, rec: str) -> HoldRecord:
    market, asset, amount, ts, *_ = rec.split("|")
    return HoldRecord(order_id, market, asset, int(amount), int(ts))


async def holds(redis: Any, user: str) -> list[HoldRecord]:
    """The user's open holds (order id, market, asset, amount still held, time)."""
    raw = await redis.hgetall(account_keys(user)[1])
    out = [_hold_record(_text(oid), _text(rec)) for oid, rec in raw.items()]
    return sorted(out, key=lambda h: h.order_id)


async def hold_record(redis: Any, user: str, order_id: str) -> HoldRecord | None:
    """The user's open hold of one order (one field read, not all the user's holds)."""
    raw = await redis.hget(account_keys(user)[1], order_id)
    return None if raw is None else _hold_record(order_id, _text(raw))


async def client_order(redis: Any, user: str, client_order_id: str) -> tuple[str, str] | None:
    """``(market, order_id)`` of the user's order with that client order id (24 h)."""
    _check_id(client_order_id, "client_order_id")
    value = await redis.get(account_keys(user)[0][:-3] + "c:" + client_order_id)
    if value is None:
        return None
    market, _, order_id = _text(value).partition("|")
    return market, order_id


# -- settlement --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Applied:
    """What a settle/credit call changed: op count and the touched balances after."""

    ops: int
    balances: list[Balance]


def _applied(reply: Any) -> Applied:
    rows = [Balance(_text(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in reply[1:]]
    return Applied(int(reply[0]), rows)


def settle_call(user: str, market: str, ops: Sequence[SettleOp]) -> tuple[str, list[Any]]:
    """``(function, args)`` of :func:`settle_entry`, for callers that pipeline."""
    keys = account_keys(user)
    return "acct_settle", [len(keys), *keys, market_stream(market), market, encode_ops(ops)]


def credit_call(payee: str, payer: str, ops: Sequence[CreditOp]) -> tuple[str, list[Any]]:
    """``(function, args)`` of :func:`credit`, for callers that pipeline."""
    keys = account_keys(payee)
    return "acct_credit", [len(keys), *keys, account_stream_key(payer), "", encode_ops(ops)]


def parse_applied(reply: Any) -> Applied:
    """Decode a settle/credit reply (raises EngineError for an error reply)."""
    if isinstance(reply, ResponseError):
        raise engine_error(reply)
    return _applied(reply)


async def settle_entry(redis: Any, user: str, market: str, ops: Sequence[SettleOp]) -> Applied:
    """Apply ``user``'s ops from ``market``'s stream, each entry exactly once."""
    fn, args = settle_call(user, market, ops)
    try:
        return _applied(await redis.fcall(fn, *args))
    except ResponseError as exc:
        raise engine_error(exc) from None


async def credit(redis: Any, payee: str, payer: str, ops: Sequence[CreditOp]) -> Applied:
    """Credit transfers from ``payer``'s outbox to ``payee``, each exactly once."""
    fn, args = credit_call(payee, payer, ops)
    try:
        return _applied(await redis.fcall(fn, *args))
    except ResponseError as exc:
        raise engine_error(exc) from None


# -- wallet ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DepositResult:
    user: str
    replay: bool
    available: int


async def deposit(
    redis: Any, deposit_id: str, address: str, asset: str, amount: int, *, now: int | None = None
) -> DepositResult:
    """Credit ``amount`` to the owner of ``address`` (idempotent by deposit id)."""
    _check_id(deposit_id, "deposit id")
    _check_amount(amount)
    await asset_scale(redis, asset)
    owner = await _owner(redis, address, asset)
    keys = account_keys(owner.user)
    # deposit ids are global (as in PostgreSQL's deposits): the same id for another
    # user's address is not a new deposit; a refused request gives the id back
    claimed = await redis.hsetnx(DEPOSITS_KEY, deposit_id, owner.user)
    if not claimed and _text(await redis.hget(DEPOSITS_KEY, deposit_id)) != owner.user:
        raise EngineError("INVALID_PARAM", "deposit id already used for another address")
    await redis.sadd(ACCOUNTS_KEY, owner.user)
    try:
        kind, available = await _call(redis, "acct_deposit", keys, deposit_id, asset, amount,
                                      now or now_ms(), address.lower())  # fmt: skip
    except EngineError:
        if claimed and not await redis.hexists(keys[4], "d:" + deposit_id):
            await redis.hdel(DEPOSITS_KEY, deposit_id)
        raise
    return DepositResult(owner.user, _text(kind) == "replay", int(available))


async def _owner(redis: Any, address: str, asset: str) -> addresses.Owner:
    if not isinstance(address, str) or not addresses.is_valid(address):
        raise EngineError("INVALID_PARAM", "invalid address (bad format or checksum)")
    owner = await addresses.resolve(redis, address)
    if owner is None:
        raise EngineError("INVALID_PARAM", "unknown address")
    if owner.asset != asset:
        raise EngineError("INVALID_PARAM", f"address is for {owner.asset}, not {asset}")
    return owner


WithdrawalState = Literal["requested", "done", "rejected"]


@dataclass(frozen=True, slots=True)
class WithdrawalResult:
    user: str
    replay: bool
    state: WithdrawalState


def _withdrawal_result(user: str, reply: Any) -> WithdrawalResult:
    state = _text(reply[1])
    assert state in ("requested", "done", "rejected")
    return WithdrawalResult(user, _text(reply[0]) == "replay", state)  # type: ignore[arg-type]


async def request_withdrawal(
    redis: Any,
    user: str,
    withdrawal_id: str,
    asset: str,
    amount: int,
    address: str,
    *,
    now: int | None = None,
) -> WithdrawalResult:
    """Hold ``amount`` for a withdrawal to an external ``address`` (idempotent by id)."""
    keys = account_keys(user)
    _check_id(withdrawal_id, "withdrawal id")
    _check_amount(amount)
    await asset_scale(redis, asset)
    if addresses.is_valid(address):
        raise EngineError("INVALID_PARAM", "an hftx address: use a transfer")
    if isinstance(address, str) and address.lower().startswith(addresses.HRP + "1"):
        # a mistyped hftx address (bad checksum) is not an external one
        raise EngineError("INVALID_PARAM", "invalid address (bad format or checksum)")
    if not re.fullmatch(r"[A-Za-z0-9]{1,100}", address or ""):
        raise EngineError("INVALID_PARAM", "bad address")
    # index first (admins act by id); a refused request gives the id back
    claimed = await redis.hsetnx(WITHDRAWALS_KEY, withdrawal_id, user)
    if not claimed and _text(await redis.hget(WITHDRAWALS_KEY, withdrawal_id)) != user:
        raise EngineError("INVALID_PARAM", "withdrawal id already in use")
    try:
        reply = await _call(redis, "acct_withdraw_request", keys, withdrawal_id, asset, amount,
                            address, now or now_ms())  # fmt: skip
    except EngineError:
        if claimed and not await redis.hexists(keys[4], "w:" + withdrawal_id):
            await redis.hdel(WITHDRAWALS_KEY, withdrawal_id)
        raise
    return _withdrawal_result(user, reply)


async def _finish_withdrawal(
    redis: Any, fn: str, withdrawal_id: str, user: str | None, now: int | None
) -> WithdrawalResult:
    _check_id(withdrawal_id, "withdrawal id")
    if user is None:
        owner = await redis.hget(WITHDRAWALS_KEY, withdrawal_id)
        if owner is None:
            raise EngineError("INVALID_PARAM", "unknown withdrawal")
        user = _text(owner)
    reply = await _call(redis, fn, account_keys(user), withdrawal_id, now or now_ms())
    return _withdrawal_result(user, reply)


async def complete_withdrawal(
    redis: Any, withdrawal_id: str, *, user: str | None = None, now: int | None = None
) -> WithdrawalResult:
    """The withdrawal was sent: its held amount leaves the exchange (idempotent)."""
    return await _finish_withdrawal(redis, "acct_withdraw_complete", withdrawal_id, user, now)


async def reject_withdrawal(
    redis: Any, withdrawal_id: str, *, user: str | None = None, now: int | None = None
) -> WithdrawalResult:
    """Refuse the withdrawal: its amount goes back to available (idempotent)."""
    return await _finish_withdrawal(redis, "acct_withdraw_reject", withdrawal_id, user, now)


@dataclass(frozen=True, slots=True)
class Withdrawal:
    id: str
    asset: str
    amount: int
    address: str
    state: WithdrawalState
    ts: int


async def withdrawals(redis: Any, user: str) -> list[Withdrawal]:
    """The user's withdrawals, oldest first."""
    out = []
    async for field, value in redis.hscan_iter(account_keys(user)[4], match="w:*", count=1000):
        state, asset, amount, address, ts = _text(value).split("|")
        out.append(Withdrawal(_text(field)[2:], asset, int(amount), address, state, int(ts)))  # type: ignore[arg-type]
    return sorted(out, key=lambda w: (w.ts, w.id))


@dataclass(frozen=True, slots=True)
class TransferResult:
    payee: str
    replay: bool
    outbox_id: str  # payer stream entry the settler credits the payee from


async def transfer(
    redis: Any,
    user: str,
    transfer_id: str,
    asset: str,
    amount: int,
    to_address: str,
    *,
    now: int | None = None,
) -> TransferResult:
    """Instant internal transfer to another user's address (idempotent by transfer id).

    The payer is debited at once; the settler credits the payee exactly once.
    """
    keys = account_keys(user)
    _check_id(transfer_id, "transfer id")
    _check_amount(amount)
    await asset_scale(redis, asset)
    owner = await _owner(redis, to_address, asset)
    if owner.user == user:
        raise EngineError("INVALID_PARAM", "cannot transfer to your own address")
    pipe = redis.pipeline(transaction=False)
    pipe.zincrby(OUTBOX_KEY, 1, user)  # signal first: the index may only over-report
    pipe.sadd(ACCOUNTS_KEY, owner.user)
    pipe.fcall("acct_transfer_out", len(keys), *keys, transfer_id, asset, amount, owner.user,
               now or now_ms())  # fmt: skip
    wake_outboxes(pipe)
    _, _, reply, *_ = await pipe.execute(raise_on_error=False)
    if isinstance(reply, ResponseError):
        raise engine_error(reply)
    return TransferResult(owner.user, _text(reply[0]) == "replay", _text(reply[1]))


async def transfer_entry(redis: Any, payer: str, transfer_id: str) -> str | None:
    """The payer's stream entry the payee of a transfer is credited from (P2P releases
    are transfers ``p2p:<trade id>``), or None if there is no such transfer."""
    raw = await redis.hget(account_keys(payer)[4], "t:" + transfer_id)
    return None if raw is None else _text(raw).split("|")[3]


def wake_outboxes(pipe: Any) -> None:
    """Add to ``pipe`` the wake-up of the settler's outbox loop (after the transfer:
    woken, it finds the entry; a lost wake-up only costs its 10 ms poll)."""
    pipe.lpush(OUTBOX_WAKE_KEY, 1)
    pipe.ltrim(OUTBOX_WAKE_KEY, 0, 0)


async def balances(redis: Any, user: str) -> list[Balance]:
    """The user's balances per asset, sorted by asset."""
    keys = account_keys(user)
    flat = await redis.fcall_ro("acct_balances", 1, keys[0])
    values: dict[str, dict[str, int]] = {}
    for i in range(0, len(flat), 2):
        asset, _, kind = _text(flat[i]).rpartition(":")
        values.setdefault(asset, {})[kind] = int(flat[i + 1])
    return [
        Balance(a, v.get("a", 0), v.get("h", 0), v.get("e", 0)) for a, v in sorted(values.items())
    ]


async def balance(redis: Any, user: str, asset: str) -> Balance:
    """One asset's balance (zeros when the account never held it)."""
    for b in await balances(redis, user):
        if b.asset == asset:
            return b
    return Balance(asset, 0, 0, 0)


# -- indexes for the settler and the reconciler -------------------------------------


async def index_members(redis: Any, index: Literal["holders", "outbox"]) -> list[tuple[str, float]]:
    """``(user, score)`` of an index; remove entries with :func:`index_done`."""
    key = HOLDERS_KEY if index == "holders" else OUTBOX_KEY
    rows = await redis.zrange(key, 0, -1, withscores=True)
    return [(_text(u), float(s)) for u, s in rows]


async def index_done(
    redis: Any, index: Literal["holders", "outbox"], user: str, score: float
) -> bool:
    """Drop ``user`` from an index unless it was bumped since ``score`` was read."""
    key = HOLDERS_KEY if index == "holders" else OUTBOX_KEY
    return bool(await redis.fcall("acct_zrem_if", 1, key, user, repr(score)))
