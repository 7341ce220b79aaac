"""A Redis cache that keeps the site up while Redis is down.

allauth keeps its rate-limit counters in the default cache, so with the stock RedisCache a
dead Redis turned every log-in and sign-up into a 500 (redis ConnectionError). This backend
answers from a per-process local-memory cache instead, logs the outage once, and tries Redis
again after a short pause. Counters kept meanwhile are per process: rate limits stay on,
only less exact, until Redis is back.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# Seconds to answer from local memory after a failure before trying Redis again: a dead
# Redis then costs one failed connection attempt per process every few seconds, not one per
# cache call.
RETRY_AFTER_SECONDS = 5.0
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
_METHODS = (
    "add",
    "get",
    "set",
    "touch",
    "delete",
    "get_many",
    "has_key",
    "incr",
    "set_many",
    "delete_many",
    "clear",
)


def _with_fallback(name: str) -> Callable[..., Any]:
    redis_method = getattr(RedisCache, name)

    @functools.wraps(redis_method)
    def method(self: ResilientRedisCache, *args: Any, **kwargs: Any) -> Any:
        if not self._redis_due():
            return getattr(self.fallback, name)(*args, **kwargs)
        try:
            result = redis_method(self, *args, **kwargs)
        except REDIS_DOWN as exc:
            self._went_down(exc)
            return getattr(self.fallback, name)(*args, **kwargs)
        self._came_back()
        return result

    return method


# One Redis client (and so one connection pool) per process and configuration. Django builds
# a cache object per thread *and per async context*: every socket's consumer got its own,
# with its own pool, so a process held a Redis connection per open page (~490 per daphne
# process with 1,000 pages on two) and every page's first cache call opened a new one.
_clients: dict[tuple[Any, ...], RedisCacheClient] = {}
_clients_lock = threading.Lock()


class ResilientRedisCache(RedisCache):
    """RedisCache that falls back to local memory on a Redis connection error or timeout."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self.fallback = LocMemCache(
            # Shared by the process's cache objects for this location, as the client is.
            f"resilient-fallback-{server}",
            {"TIMEOUT": params.get("TIMEOUT", 300), "OPTIONS": {"MAX_ENTRIES": 20000}},
        )
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._retry_at = 0.0

    @functools.cached_property
    def _cache(self) -> RedisCacheClient:
        # django-stubs do not declare RedisCache's own attributes.
        servers: list[str] = getattr(self, "_servers")  # noqa: B009
        options: dict[str, Any] = getattr(self, "_options")  # noqa: B009
        key = (tuple(servers), tuple(sorted((k, repr(v)) for k, v in options.items())))
        client = _clients.get(key)
        if client is None:
            with _clients_lock:
                client = _clients.get(key)
                if client is None:
                    client = _clients[key] = RedisCacheClient(servers, **options)
        return client

    @property
    def degraded(self) -> bool:
        """True while answers come from local memory because Redis failed."""
        return self._down_since is not None

    def _redis_due(self) -> bool:
        return self._down_since is None or time.monotonic() >= self._retry_at

    def _went_down(self, exc: BaseException) -> None:
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = time.monotonic()
            self._retry_at = time.monotonic() + RETRY_AFTER_SECONDS
        if first:
            logger.warning(
                "Redis cache unreachable (%s: %s): using a local-memory cache in this process",
                type(exc).__name__,
                exc,
            )

    def _came_back(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            was_down, self._down_since = self._down_since, None
        if was_down is not None:
            logger.warning("Redis cache reachable again after %.0f s", time.monotonic() - was_down)

    def probe(self) -> bool:
        """Ping Redis now (for the health check); True when it answers."""
        try:
            self._cache.get_client(write=False).ping()
        except REDIS_DOWN as exc:
            self._went_down(exc)
            return False
        self._came_back()
        return True


for _name in _METHODS:
    setattr(ResilientRedisCache, _name, _with_fallback(_name))
