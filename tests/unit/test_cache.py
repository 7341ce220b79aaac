"""The Redis cache's fallback: local memory while Redis is down, Redis again once it is back."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from project import cache as resilient


class FlakyRedis:
    """Stands in for Django's Redis client: down until `up` is set."""

    def __init__(self) -> None:
        self.up = False
        self.calls = 0
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any) -> Any:
        self.calls += 1
        if not self.up:
            raise RedisConnectionError("Connection refused")
        return self.data.get(key, default)

    def set(self, key: str, value: Any, timeout: Any) -> None:
        self.calls += 1
        if not self.up:
            raise RedisConnectionError("Connection refused")
        self.data[key] = value


@pytest.fixture
def backend() -> tuple[resilient.ResilientRedisCache, FlakyRedis]:
    cache = resilient.ResilientRedisCache("redis://127.0.0.1:1/0", {})
    flaky = FlakyRedis()
    cache.__dict__["_cache"] = flaky  # the cached_property Django's RedisCache reads
    return cache, flaky


def test_answers_from_memory_while_down_then_from_redis_again(
    backend: tuple[resilient.ResilientRedisCache, FlakyRedis],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache, flaky = backend
    clock = [1000.0]
    monkeypatch.setattr(resilient.time, "monotonic", lambda: clock[0])

    cache.set("k", "kept in memory")
    assert cache.degraded
    assert cache.get("k") == "kept in memory"
    assert flaky.calls == 1  # within the pause, Redis is not asked again

    flaky.up = True
    clock[0] += resilient.RETRY_AFTER_SECONDS + 1
    cache.set("k", "in redis")

    assert not cache.degraded
    assert flaky.data[cache.make_key("k")] == "in redis" and cache.get("k") == "in redis"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1
    assert sum("reachable again" in m for m in messages) == 1
