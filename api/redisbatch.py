"""Coalesce the Redis commands of concurrent requests into pipelines.

:class:`BatchingRedis` is a ``redis.asyncio.Redis`` whose commands (and
non-transactional pipelines) issued during one event-loop iteration go to Redis
together, as ONE pipeline, in issue order. A single request sees no difference
(its command is sent at the end of the current iteration); under load, hundreds
of concurrent orders share each round trip and skip most of redis-py's
per-command overhead (connection checkout, retries, observability).

Blocking commands (XREAD with BLOCK, BLPOP, ...) and transactions bypass the
batch. Cluster clients are not wrapped (see :func:`batching`).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import hiredis
from redis._parsers.hiredis import NOT_ENOUGH_DATA
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.exceptions import ResponseError

Command = tuple[tuple[Any, ...], dict[str, Any]]

BYPASS = frozenset(
    {
        "XREAD", "XREADGROUP", "BLPOP", "BRPOP", "BLMOVE", "BLMPOP", "BRPOPLPUSH", "BZPOPMIN",
        "BZPOPMAX", "BZMPOP", "WAIT", "WAITAOF", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE",
        "MONITOR", "MULTI", "EXEC", "WATCH", "UNWATCH", "DISCARD",
    }
)  # fmt: skip


class BatchingRedis(Redis):
    """A Redis client that pipelines the commands issued in one loop iteration."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch: list[tuple[list[Command], asyncio.Future[list[Any]]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle: list[Any] = []  # connections kept between batches (see _connection)
        self._callbacks: dict[Any, Any] = {}  # command name -> response callback or None
        self.batches = 0
        self.commands = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if _bypasses(args[0]):
            return await super().execute_command(*args, **options)
        (result,) = await self.submit([(args, options)])
        if isinstance(result, Exception):
            raise result
        return result

    def submit(self, commands: list[Command]) -> asyncio.Future[list[Any]]:
        """Queue ``commands`` for the next flush; the future gets their replies."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        if not self._batch:
            loop.call_soon(self._flush)
        self._batch.append((commands, future))
        return future

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if batch:
            task = asyncio.ensure_future(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[list[Command], asyncio.Future[list[Any]]]]) -> None:
        # each options dict is the batch's own (made by execute_command / execute)
        commands = [command for group, _ in batch for command in group]
        self.batches += 1
        self.commands += len(commands)
        try:
            replies = await self._roundtrip(commands)
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        i = 0
        for group, future in batch:
            if not future.done():
                future.set_result(replies[i : i + len(group)])
            i += len(group)

    async def _roundtrip(self, commands: list[Command]) -> list[Any]:
        """Send ``commands`` in one write, read every reply (errors as values)."""
        conn = await self._connection()
        try:
            await conn.send_packed_command(_pack(conn, commands), check_health=False)
            replies: list[Any] = []
            reader = _buffered_reader(conn)
            callbacks = self._callbacks
            for args, options in commands:
                # Fast path: a reply already buffered in hiredis' reader, no option that
                # changes its parsing. Else redis-py's own path (reads the socket).
                reply = NOT_ENOUGH_DATA
                if reader is not None and NEVER_DECODE not in options:
                    reply = reader.gets()
                    while _PUSH is not None and isinstance(reply, _PUSH):  # RESP3 out-of-band
                        reply = reader.gets()
                if reply is NOT_ENOUGH_DATA:
                    try:
                        reply = await self.parse_response(conn, args[0], **options)
                    except ResponseError as exc:
                        reply = exc
                elif isinstance(reply, Exception):
                    if not isinstance(reply, ResponseError):
                        raise reply
                    reply = options.get(EMPTY_RESPONSE, reply)
                else:
                    if options:
                        options.pop(EMPTY_RESPONSE, None)
                        options.pop("keys", None)
                    name = args[0]
                    callback = callbacks.get(name, callbacks)
                    if callback is callbacks:  # not looked up yet (redis-py's is case-blind)
                        callback = callbacks[name] = self.response_callbacks.get(name)
                    if callback is not None:
                        reply = callback(reply, **options)
                        if inspect.isawaitable(reply):
                            reply = await reply
                replies.append(reply)
        except BaseException:
            try:
                await conn.disconnect()  # replies may be left unread: never reuse the socket
            finally:
                await self.connection_pool.release(conn)
            raise
        self._idle.append(conn)
        return replies

    async def _connection(self) -> Any:
        """A connection for one batch: one this client kept from an earlier batch (all
        its replies read), else one from the pool. Keeping them skips the pool's
        checkout, which probes each connection with a zero-timeout read (an extra
        event-loop iteration per batch)."""
        while self._idle:
            conn = self._idle.pop()
            if _clean(conn):
                return conn
            await conn.disconnect()  # the server closed it (restart, timeout)
            await self.connection_pool.release(conn)
        return await self.connection_pool.get_connection()

    def set_response_callback(self, command: str, callback: Any) -> None:
        super().set_response_callback(command, callback)
        self._callbacks.clear()

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        if transaction:
            return super().pipeline(transaction, shard_hint)
        return BatchedPipeline(self)


class BatchedPipeline(Pipeline):
    """A non-transactional pipeline whose commands join the owner's next batch."""

    def __init__(self, owner: BatchingRedis) -> None:
        super().__init__(owner.connection_pool, owner.response_callbacks, False, None)
        self._owner = owner

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack, self.command_stack = self.command_stack, []
        if not stack:
            return []
        replies = await self._owner.submit([(args, dict(options)) for args, options in stack])
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies


_PUSH = getattr(hiredis, "PushNotification", None)


def _clean(conn: Any) -> bool:
    """Connected, no end of stream seen, nothing unread in its buffer."""
    stream = getattr(conn, "_reader", None)
    if stream is None or getattr(conn, "_writer", None) is None:
        return False
    return not stream.at_eof() and stream.exception() is None and not stream._buffer


def _buffered_reader(conn: Any) -> Any:
    """The hiredis reader of the connection, or None (then only redis-py reads)."""
    reader = getattr(getattr(conn, "_parser", None), "_reader", None)
    return reader if isinstance(reader, hiredis.Reader) else None


_BYPASSES: dict[Any, bool] = {}


def _bypasses(name: Any) -> bool:
    """Whether command ``name`` skips the batch (memoized: a few names, every command)."""
    verdict = _BYPASSES.get(name)
    if verdict is None:
        verdict = str(name).upper() in BYPASS
        if len(_BYPASSES) < 1024:
            _BYPASSES[name] = verdict
    return verdict


def _split(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``("CONFIG GET", x)`` -> ``("CONFIG", "GET", x)``, as redis-py sends it."""
    name = args[0]
    if type(name) is str:
        if " " not in name:
            return args
    elif not (
        isinstance(name, str | bytes) and (" " in name if isinstance(name, str) else b" " in name)
    ):
        return args
    return (*name.split(), *args[1:])


def _pack(conn: Any, commands: list[Command]) -> bytes:
    """The RESP bytes of ``commands`` (hiredis' C packer when it takes the arguments)."""
    try:
        return b"".join([hiredis.pack_command(_split(args)) for args, _ in commands])
    except (TypeError, ValueError, AttributeError):
        return b"".join(conn.pack_commands([args for args, _ in commands]))


def batching(client: Any) -> Any:
    """A batching client sharing ``client``'s connection pool (clusters: unchanged)."""
    if type(client) is not Redis:
        return client
    return BatchingRedis(connection_pool=client.connection_pool)
