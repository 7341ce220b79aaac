"""Template context shared by every page."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict[str, Any]:
    """Site-wide values templates need (which social providers are configured)."""
    return {
        "social_providers": sorted(settings.SOCIALACCOUNT_PROVIDERS),
        "ai_offline": not (settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL),
        "dictation_max_seconds": settings.DICTATION_MAX_SECONDS,
    }
