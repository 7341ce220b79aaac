"""Template context shared by every page."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def site(request: HttpRequest) -> dict[str, Any]:
    """Site-wide values templates need (which social providers are configured)."""
    return {
        "social_providers": sorted(settings.SOCIALACCOUNT_PROVIDERS),
        "ai_offline": not (settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL),
        "dictation_max_seconds": settings.DICTATION_MAX_SECONDS,
        "message_max_length": settings.MAX_MESSAGE_LENGTH,
    }


def quota(request: HttpRequest) -> dict[str, Any]:
    """The header's badges on every page: AI replies left today, unread room messages."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from chat.coach import quota as ledger  # the app registry is ready by request time

    # Lazy: fragments that never show the badge (htmx partials) cost no query.
    from chat.rooms import selectors as rooms

    return {
        "quota": SimpleLazyObject(lambda: ledger.context_of_request(request)),
        "rooms_unread": SimpleLazyObject(lambda: rooms.unread_total(user)),
    }
