"""Database work from async code on a bounded pool of threads, so pages don't queue.

`channels.db.database_sync_to_async` runs every call on the process's one thread-sensitive
sync thread: one page's send waits behind every other page's checkpoint, catch-up and
access check. `db_async(func)` runs `func` on one of `DB_THREADS` pool threads instead,
with the same connection care (`close_old_connections` before and after each call, so a
connection past `CONN_MAX_AGE` or broken is replaced on the thread that owns it).

What stays the same: each call is one sync function, so a transaction never spans two
calls or two threads; a caller that awaits each call keeps its own order; what must not
race is guarded in the database (the quota's row lock, `next_seqs`' single `UPDATE`), the
same guards that already hold between processes. Each pool thread keeps its own
connection: a process opens up to `DB_THREADS` more (see docs/scaling.md for PostgreSQL's
`max_connections`).

An in-memory SQLite database (one per connection unless shared-cache) and `DB_THREADS=1`
keep the old thread-sensitive behaviour.

A pool thread keeps its connection for `DB_THREAD_CONN_MAX_AGE` seconds even where
`CONN_MAX_AGE` is 0 (PostgreSQL's default here, right for HTTP requests, whose threads come
and go under ASGI): the pool's threads live as long as the process and are bounded, so
their connections are too, and a connect per socket event (~5-10 ms, most of a send's hop
on PostgreSQL) is saved. Health checks and `close_if_unusable_or_obsolete` still apply.
With Django's connection pool (PostgreSQL's default here, `DB_POOL`) a thread gives its
connection back after each call instead: the pool keeps it open.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from asgiref.sync import SyncToAsync
from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.db import close_old_connections, connections

__all__ = ["db_async", "pooled", "shutdown"]

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_size = 0


def _in_memory_sqlite() -> bool:
    """True when a connection per thread would not see the same database."""
    for alias in connections:
        connection = connections[alias]
        if connection.vendor == "sqlite" and connection.is_in_memory_db():  # type: ignore[attr-defined]
            return True
    return False


def pooled() -> bool:
    """Whether database calls from async code run on the pool (else on the sync thread)."""
    return settings.DB_THREADS > 1 and not _in_memory_sqlite()


def _executor() -> ThreadPoolExecutor:
    global _pool, _size
    with _lock:
        if _pool is None:
            _size = settings.DB_THREADS
            _pool = ThreadPoolExecutor(max_workers=_size, thread_name_prefix="db")
        return _pool


_kept = threading.local()  # per pool thread: alias -> the raw connection already given an age


def _keep_connections() -> None:
    """Give each connection this pool thread opened with CONN_MAX_AGE 0 its thread's age."""
    age = settings.DB_THREAD_CONN_MAX_AGE
    if age <= 0:
        return
    seen: dict[str, object] = _kept.__dict__.setdefault("raw", {})
    for connection in connections.all(initialized_only=True):
        raw = connection.connection
        if raw is None or seen.get(connection.alias) is raw:
            continue
        seen[connection.alias] = raw
        pooled_by_django = bool(connection.settings_dict.get("OPTIONS", {}).get("pool"))
        if connection.settings_dict.get("CONN_MAX_AGE") == 0 and not pooled_by_django:
            connection.close_at = time.monotonic() + age


class _PoolCall(DatabaseSyncToAsync):
    """Channels' connection care around the call, with the pool thread's connection kept."""

    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return SyncToAsync.thread_handler(self, loop, *args, **kwargs)  # type: ignore[no-untyped-call]
        finally:
            _keep_connections()
            close_old_connections()


def db_async[**P, R](func: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """`func` as a coroutine function whose calls run on the database pool.

    A drop-in for `database_sync_to_async` on calls that need no particular thread: they
    take their own connection and finish their own transaction.
    """
    if not pooled():
        return cast("Callable[P, Coroutine[Any, Any, R]]", DatabaseSyncToAsync(func))
    wrapped = _PoolCall(func, thread_sensitive=False, executor=_executor())
    return cast("Callable[P, Coroutine[Any, Any, R]]", wrapped)


def shutdown() -> None:
    """Close each pool thread's connection and stop the pool (tests; process exit)."""
    global _pool
    with _lock:
        pool, _pool, workers = _pool, None, _size
    if pool is None:
        return
    barrier = threading.Barrier(workers, timeout=5)

    def close() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()  # every worker takes one: no thread closes twice, none is missed
        connections.close_all()

    for future in [pool.submit(close) for _ in range(workers)]:
        future.result(timeout=10)
    pool.shutdown(wait=True)
