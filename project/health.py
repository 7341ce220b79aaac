"""Health endpoints for load balancers and operators; neither needs sign-in."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

CHECK_TIMEOUT = 2.0


@require_GET
@never_cache
def health(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else, so it stays cheap."""
    return JsonResponse({"status": "ok"})


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"status": "ok", "vendor": connection.vendor}


async def _check_channel_layer() -> dict[str, Any]:
    layer = get_channel_layer()
    if layer is None:
        return {"status": "down", "error": "no channel layer configured"}
    # The default prefix: channels_redis has one receive lock per process, held by a socket's
    # receive on the default prefix's key; a "health." channel would wait for it (up to 5 s).
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "health.ping"})
    message = await layer.receive(channel)
    if message.get("type") != "health.ping":
        return {"status": "down", "error": "round trip returned the wrong message"}
    return {"status": "ok", "backend": type(layer).__name__}


async def _check_redis() -> dict[str, Any]:
    import redis.asyncio as redis

    client = redis.from_url(settings.REDIS_URL, socket_connect_timeout=CHECK_TIMEOUT)
    try:
        await client.ping()
    finally:
        await client.aclose()
    return {"status": "ok"}


def _check_cache() -> dict[str, Any]:
    from django.core.cache import caches

    from project.cache import ResilientRedisCache

    backend = caches["default"]
    if isinstance(backend, ResilientRedisCache) and not backend.probe():
        # Still serving (rate limits, presence) from each process's own memory.
        return {"status": "degraded", "backend": "redis", "fallback": "local memory"}
    kind = "redis" if isinstance(backend, ResilientRedisCache) else type(backend).__name__
    return {"status": "ok", "backend": kind}


OFFLINE_HINT = (
    "The offline coach is answering. To use a model, set OPENAI_API_KEY (or OPENAI_BASE_URL "
    "for any OpenAI-compatible server such as vLLM, Ollama or llama.cpp) and restart."
)


async def _check_ai() -> dict[str, Any]:
    """The model server answers and accepts the key (lists models); offline is always up."""
    from chat.coach.providers import get_provider

    provider = get_provider()
    if provider.offline:
        # For staff (learners only see a small "offline coach" badge).
        return {"status": "ok", "mode": "offline", "hint": OFFLINE_HINT}
    await provider.check()  # ProviderError → "down" with its code
    return {"status": "ok", "mode": "configured", "model": settings.OPENAI_MODEL}


def _check_activity() -> dict[str, Any]:
    """Which path the class activity log takes, and how far its stream's consumer lags."""
    from chat.classes import activity, stream

    result: dict[str, Any] = {"status": "ok", "path": activity.path()}
    if activity.redis_url():
        try:
            result.update(stream.lag(activity.client()))
        except Exception as exc:
            # Events go to the database directly meanwhile: degraded, not down.
            return {"status": "degraded", "path": "direct", "error": f"{type(exc).__name__}"}
        if result["path"] == "direct":
            result["status"] = "degraded"
    else:
        result["direct_pending"] = activity.buffer.pending()
    return result


async def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(check, timeout=CHECK_TIMEOUT)
    except TimeoutError:
        result = {"status": "down", "error": "timed out"}
    except Exception as exc:  # a health check reports failures, it never raises them
        result = {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return dict(result)


async def detailed_status() -> tuple[bool, dict[str, Any]]:
    """Check every service; returns (all ok, per-service report)."""
    checks: dict[str, Any] = {
        "database": sync_to_async(_check_database, thread_sensitive=False)(),
        "channel_layer": _check_channel_layer(),
        "cache": sync_to_async(_check_cache, thread_sensitive=False)(),
        "ai_provider": _check_ai(),
        "activity_log": sync_to_async(_check_activity, thread_sensitive=False)(),
    }
    if settings.REDIS_URL:
        checks["redis"] = _check_redis()
    results = await asyncio.gather(*(_timed(c) for c in checks.values()))
    services = dict(zip(checks.keys(), results, strict=True))
    # A degraded cache still answers; Redis itself is reported (and fails the check) apart.
    healthy = all(s["status"] in ("ok", "degraded") for s in services.values())
    return healthy, services


@never_cache
async def health_detailed(request: HttpRequest) -> JsonResponse:
    """Readiness: a status per service, 503 when any is down."""
    if request.method != "GET":
        return JsonResponse({"error": "method not allowed"}, status=405)
    healthy, services = await detailed_status()
    return JsonResponse(
        {"status": "ok" if healthy else "down", "services": services},
        status=200 if healthy else 503,
    )
