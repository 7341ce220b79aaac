"""Choosing the provider from settings: OpenAI-compatible when a key or URL is set, else offline."""

from __future__ import annotations

import functools

from chat.coach.contract import Provider, ProviderConfig
from chat.coach.offline import OfflineProvider
from chat.coach.openai_provider import OpenAIProvider


def build_provider(config: ProviderConfig) -> Provider:
    """A fresh provider for a config (prefer get_provider(), which caches)."""
    if config.uses_openai:
        return OpenAIProvider(config)
    return OfflineProvider(config)


@functools.lru_cache(maxsize=16)
def _cached_provider(config: ProviderConfig) -> Provider:
    return build_provider(config)


def config_from_settings() -> ProviderConfig:
    """Read the provider settings from django.conf.settings."""
    from django.conf import settings

    return ProviderConfig(
        api_key=str(getattr(settings, "OPENAI_API_KEY", "") or ""),
        base_url=str(getattr(settings, "OPENAI_BASE_URL", "") or ""),
        model=str(getattr(settings, "OPENAI_MODEL", "") or "gpt-4o-mini"),
        timeout_seconds=float(getattr(settings, "AI_TIMEOUT_SECONDS", 30) or 30),
        max_retries=int(getattr(settings, "AI_MAX_RETRIES", 2)),
        http_client=str(getattr(settings, "AI_HTTP_CLIENT", "aiohttp")),
        history_budget_tokens=int(getattr(settings, "AI_HISTORY_BUDGET_TOKENS", 3000)),
        offline_token_delay=float(getattr(settings, "OFFLINE_TOKEN_DELAY", 0.03)),
    )


def get_provider() -> Provider:
    """The provider chosen by settings: OpenAI when a key or base URL is set, else offline."""
    return _cached_provider(config_from_settings())
