"""The in-memory channel layer (one process, no Redis) with its expiry sweep throttled.

Channels' `InMemoryChannelLayer` walks every channel and every group membership on *each*
`receive()` and `group_send()` to drop expired messages: O(sockets) per frame, O(sockets²)
per second. With a thousand sockets that sweep alone saturated a core (see
`bench/results.md`). Expiry is measured in tens of seconds, so sweeping once a second loses
nothing that matters.

Its sends are leaner too: Channels builds (and mostly throws away) a new `asyncio.Queue` on
every `send()` and `receive()`, and `group_send()` starts a task per member. Per member per
frame that was about a fifth of a 1,000-member room's fan-out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from copy import deepcopy
from typing import Any, cast

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer
from redis import asyncio as aioredis
from redis import exceptions as redis_exceptions

READER_BACKOFF_CAP = 2.0  # seconds between a failing reader's attempts, at most
# How long a channel that received counts as this process's (a busy consumer between two
# receive() calls) when Redis restarts: its next receive() fails too.
SEEN_FOR = 60.0
logger = logging.getLogger(__name__)


_IMMUTABLE = (str, int, float, bool, bytes, type(None))


def copy_message(message: dict[str, Any]) -> dict[str, Any]:
    """A receiver's own copy of `message`: shallow when every value is immutable.

    Channels deep-copies each member's message; a frame event is flat (strings and numbers),
    and its deep copy was the largest single cost of a token's fan-out (7 % of daphne with
    120 replies streaming, py-spy). A shallow copy of a flat dict is as safe.
    """
    for value in message.values():
        if not isinstance(value, _IMMUTABLE):
            return deepcopy(message)
    return dict(message)


class ThrottledInMemoryChannelLayer(InMemoryChannelLayer):
    """`InMemoryChannelLayer` whose expiry sweep runs at most once per `sweep_interval` s."""

    def __init__(self, sweep_interval: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sweep_interval = sweep_interval
        self._next_sweep = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.sweep_interval
        super()._clean_expired()

    def _queue(self, channel: str) -> asyncio.Queue[tuple[float, dict[str, Any]]]:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        return queue

    def _offer(self, channel: str, message: dict[str, Any]) -> bool:
        """Queue a copy of `message` for `channel` (one each, as in Channels); False when full."""
        try:
            self._queue(channel).put_nowait((time.time() + self.expiry, copy_message(message)))
        except asyncio.QueueFull:
            return False
        return True

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        if not self._offer(channel, message):
            raise ChannelFull(channel)

    async def receive(self, channel: str) -> dict[str, Any]:
        self.require_valid_channel_name(channel)
        self._clean_expired()
        queue = self._queue(channel)
        try:
            _expires, message = await queue.get()
        except BaseException:
            # The receiver went away (its consumer ended): forget its queue if nothing waits
            # in it. On success the queue stays for the next receive instead of being rebuilt.
            if queue.empty():
                self.channels.pop(channel, None)
            raise
        return message

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        # In one pass, no task per member; a full channel misses the message, as in Channels.
        for channel in list(self.groups.get(group, ())):
            self._offer(channel, message)
        # Let the waiting receivers take their copies before the sender goes on, as they did
        # while Channels awaited a task per member: a consumer that sends to its own group
        # during `connect` sees that frame before the page's next one, not after it.
        await asyncio.sleep(0)


# --- Redis ------------------------------------------------------------------------------------

# Raised by redis-py when no connection could be had or used: a Redis restart, a dropped
# connection, a pool whose connections are all busy past its wait.
REDIS_TRANSIENT: tuple[type[BaseException], ...] = (
    redis_exceptions.ConnectionError,
    redis_exceptions.TimeoutError,
    OSError,
)
# Raised before anything reached Redis: safe to retry even a send (no duplicate can result).
POOL_EXHAUSTED_TEXT = ("Too many connections", "No connection available")
RETRY_DELAYS = (0.05, 0.2, 0.5)  # seconds before each retry of a layer call


def blocking_pool(
    host: dict[str, Any], *, max_connections: int, timeout: float
) -> aioredis.ConnectionPool:
    """A pool of at most `max_connections` where a busy moment waits up to `timeout` s.

    redis-py's default async pool has the same cap (100 since redis-py 7) but *raises*
    `ConnectionError("Too many connections")` the moment it is reached: 200 pages joining
    at once over two processes lost a socket to it (issue 11).
    """
    host = dict(host)
    address = host.pop("address", None)
    if address is not None:
        return aioredis.BlockingConnectionPool.from_url(
            address, max_connections=max_connections, timeout=timeout, **host
        )
    return aioredis.BlockingConnectionPool(max_connections=max_connections, timeout=timeout, **host)


def _before_any_write(exc: BaseException) -> bool:
    return isinstance(exc, redis_exceptions.ConnectionError) and any(
        text in str(exc) for text in POOL_EXHAUSTED_TEXT
    )


async def _with_retries(call: Any, *, idempotent: bool) -> Any:
    """Await `call()`, again after a short pause on a transient Redis error.

    Joining or leaving a group is idempotent and always retried; a send is retried only when
    the error came before anything was written (the pool had no connection), so a retry never
    delivers a message twice.
    """
    for delay in RETRY_DELAYS:
        try:
            return await call()
        except REDIS_TRANSIENT as exc:
            if not idempotent and not _before_any_write(exc):
                raise
            logger.warning("channel layer: %s; retrying in %.2f s", exc, delay)
            await asyncio.sleep(delay)
    return await call()


class _ReaderFailedError(Exception):
    """Put on a waiting channel's local queue when the shared reader met a Redis error."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class PooledRedisChannelLayer(RedisChannelLayer):
    """channels-redis's list layer with a waiting pool, retries and one reader per process.

    - **Pool:** a `BlockingConnectionPool` capped at `max_connections` per host and event
      loop: a burst (every page of a class joining at once) queues for a connection for up
      to `pool_timeout` s instead of failing with "Too many connections".
    - **Retries:** group joins and leaves, and sends that never reached Redis, are retried
      after a short pause, so a Redis blip does not end the socket that made the call.
    - **One reader:** channels-redis's `receive()` starts two tasks per message per waiting
      consumer (one for its lock, one for its buffer) and races them with `asyncio.wait`;
      with 1,000 pages on a process that was most of a frame's cost. Here one task per
      process (per channel prefix) pops the process's Redis queue and puts each message on
      the local queues of the channels it names; a consumer's `receive()` is a queue get. It
      ends at the first idle pop (`brpop_timeout`) with no consumer receiving.
    - **Redis errors:** a dropped connection is ridden out (the reader waits and pops
      again; the pages wait with it). A Redis *restart* (its `run_id` changed) may have
      emptied the group memberships, so then every waiting `receive()` fails, as
      channels-redis's own receive would: the socket closes, and the page reconnects,
      re-joins its groups and catches up (reliability case F3). So does the next
      `receive()` of a channel that was busy in a handler at that moment (it received in
      the last `SEEN_FOR` s): otherwise that page stayed open and deaf. The reader ends
      with it; the next `receive()` starts one. A restart is also noticed when the run id
      could only be read after the pops worked again, and by a reader that starts on
      another server than the process's last one (Redis restarted while none was reading).

    The project's settings turn the reader on (CHANNEL_LAYER_READER=shared, the default;
    "per-receive" gives channels-redis's own receive); see docs/scaling.md for what it saves.
    """

    def __init__(
        self,
        *,
        max_connections: int = 50,
        pool_timeout: float = 5.0,
        shared_reader: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self.shared_reader = shared_reader
        # Per non-local channel name ("specific.<client prefix>!"): its reader task, and how
        # many consumers are waiting in `receive()` for a message behind it.
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._waiting: dict[str, int] = {}
        # Channels that received lately (when), and those a Redis restart failed that were
        # not waiting then (their next receive() raises the error).
        self._seen: dict[str, float] = {}
        self._failed: dict[str, tuple[float, Exception]] = {}
        self._pruned_at = time.monotonic()
        # The Redis server (run id) this process's readers last saw, per host: a reader that
        # starts on another one knows Redis restarted while none was reading.
        self._run_ids: dict[int, str] = {}

    def create_pool(self, index: int) -> aioredis.ConnectionPool:
        return blocking_pool(
            self.hosts[index], max_connections=self.max_connections, timeout=self.pool_timeout
        )

    # --- retried calls ----------------------------------------------------------------------

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await _with_retries(
            lambda: RedisChannelLayer.send(self, channel, message), idempotent=False
        )

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await _with_retries(
            lambda: RedisChannelLayer.group_send(self, group, message), idempotent=False
        )

    async def group_add(self, group: str, channel: str) -> None:
        await _with_retries(
            lambda: RedisChannelLayer.group_add(self, group, channel), idempotent=True
        )

    async def group_discard(self, group: str, channel: str) -> None:
        await _with_retries(
            lambda: RedisChannelLayer.group_discard(self, group, channel), idempotent=True
        )

    # --- one reader per process ---------------------------------------------------------------

    async def receive(self, channel: str) -> dict[str, Any]:
        if not self.shared_reader or "!" not in channel:
            return cast(dict[str, Any], await super().receive(channel))
        assert self.require_valid_channel_name(channel)
        real = self.non_local_name(channel)
        assert real.endswith(self.client_prefix + "!"), "Wrong client prefix"
        failed = self._failed.pop(channel, None)
        if failed is not None:
            raise failed[1]
        self._note_seen(channel)
        queue = self.receive_buffer[channel]
        if not queue.empty():
            message = queue.get_nowait()
        else:
            self._waiting[real] = self._waiting.get(real, 0) + 1
            try:
                self._ensure_reader(real)
                message = await queue.get()
            except BaseException:
                # The consumer is going away (cancelled): as in channels-redis, its buffer
                # goes with it. The reader is not cancelled mid-pop (a message popped and not
                # yet in its backup queue would be lost): it ends at its next idle timeout.
                self.receive_buffer.pop(channel, None)
                self._waiting[real] -= 1
                raise
            self._waiting[real] -= 1
        if queue.empty():
            self.receive_buffer.pop(channel, None)
        if isinstance(message, _ReaderFailedError):
            raise message.error
        self._note_seen(channel)  # from now on busy with this message, until it receives again
        return cast(dict[str, Any], message)

    def _note_seen(self, channel: str) -> None:
        now = time.monotonic()
        self._seen[channel] = now
        if now - self._pruned_at > SEEN_FOR / 2:  # ended consumers' channels leave
            self._pruned_at = now
            cutoff = now - SEEN_FOR
            self._seen = {name: at for name, at in self._seen.items() if at >= cutoff}
            self._failed = {n: f for n, f in self._failed.items() if f[0] >= cutoff}

    def _fail_channels_of(self, real: str, error: Exception) -> None:
        """Redis restarted: every channel of this process behind `real` must re-join."""
        now = time.monotonic()
        for name, queue in list(self.receive_buffer.items()):
            if name.startswith(real):
                queue.put_nowait(_ReaderFailedError(error))
        for name, at in list(self._seen.items()):
            if name.startswith(real) and name not in self.receive_buffer and now - at < SEEN_FOR:
                self._failed[name] = (now, error)
            if name.startswith(real):
                del self._seen[name]

    def _ensure_reader(self, real: str) -> None:
        loop = asyncio.get_running_loop()
        task = self._readers.get(real)
        if task is not None and not task.done():
            if task.get_loop() is loop:
                return
            if not task.get_loop().is_closed():
                raise RuntimeError("Two event loops are trying to receive() on one channel layer")
        self._readers[real] = loop.create_task(self._read(real), name=f"layer-reader-{real}")

    def _stop_reader(self, real: str) -> None:
        task = self._readers.pop(real, None)
        if task is not None and not task.done():
            task.cancel()

    async def _read(self, real: str) -> None:
        """Pop the process's queue for `real` and hand each message to its local channels."""
        index = self.consistent_hash(real)
        channel_key = self.prefix + real
        failures = 0
        started = await self._run_id(index)  # which Redis server this reader began on
        if self._restarted(index, started):
            # Redis restarted while no reader of this process was reading (the last one had
            # ended): the channels that were live here must re-join, as below.
            self._fail_channels_of(real, redis_exceptions.ConnectionError("Redis restarted"))
        # Whether the server may have changed since `started` was read (a pop failed, or it
        # could not be read): its run id is read before the next pop, once Redis answers.
        unverified, error = started is None, None
        while self._waiting.get(real):
            if unverified and (now := await self._run_id(index)) is not None:
                unverified = False
                moved = self._restarted(index, now)  # from the process's last server
                if moved or (started is not None and now != started):
                    # Redis restarted: whatever it held (group memberships) may be gone.
                    # Every consumer behind this reader gets the error, so its socket
                    # closes and the page reconnects and re-joins. Read here, not only
                    # right after a failure: the server may come back between two attempts.
                    self._fail_channels_of(
                        real, error or redis_exceptions.ConnectionError("Redis restarted")
                    )
                    break
                started = now
            await self.receive_clean_locks.acquire(channel_key)
            try:
                content = await self._brpop_with_clean(
                    index, channel_key, timeout=self.brpop_timeout
                )
            except Exception as exc:
                self.receive_clean_locks.release(channel_key)
                failures += 1
                delay = min(READER_BACKOFF_CAP, 0.05 * 2**failures)
                logger.warning(
                    "channel layer reader: %s; trying again in %.2f s", exc, delay,
                    exc_info=not isinstance(exc, REDIS_TRANSIENT),
                )  # fmt: skip
                await asyncio.sleep(delay)
                unverified, error = True, exc
                continue
            except BaseException:
                self.receive_clean_locks.release(channel_key)
                raise
            failures = 0
            if content is None:  # the blocking pop timed out: check who is still waiting
                self.receive_clean_locks.release(channel_key)
                continue
            # As channels-redis: the popped message leaves its backup queue in a task of its
            # own, which holds the channel's clean lock until done (so the next pop waits).
            cleaner = asyncio.ensure_future(self._clean_receive_backup(index, channel_key))
            self.receive_cleaners.append(cleaner)

            def _cleanup_done(done: asyncio.Future[None]) -> None:
                self.receive_cleaners.remove(done)
                self.receive_clean_locks.release(channel_key)

            cleaner.add_done_callback(_cleanup_done)
            try:
                message = self.deserialize(content)
            except Exception:
                logger.exception("channel layer reader: a message could not be read; dropped")
                continue
            targets = message.pop("__asgi_channel__", real)
            for target in targets if isinstance(targets, list) else (targets,):
                self.receive_buffer[target].put_nowait(message)
        if self._readers.get(real) is asyncio.current_task():
            del self._readers[real]

    def _restarted(self, index: int, run_id: str | None) -> bool:
        """Note the server a reader is on; True when it is not the one seen before."""
        if run_id is None:
            return False
        before = self._run_ids.get(index)
        self._run_ids[index] = run_id
        return before is not None and before != run_id

    async def _run_id(self, index: int) -> str | None:
        """The Redis server's run id (new after every restart); None while unreachable."""
        try:
            info = await self.connection(index).info("server")
        except Exception:
            return None
        return str(info.get("run_id")) or None

    async def close_pools(self) -> None:
        for real in list(self._readers):
            self._stop_reader(real)
        await super().close_pools()
