"""`my_classes` in every template: a learner's classes and live sessions, read only if shown."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from chat.classes import selectors


def my_classes(request: HttpRequest) -> dict[str, Any]:
    """A lazy {'classes': [...], 'live': [...]} for the signed-in person (home page)."""
    user = getattr(request, "user", None)

    def load() -> dict[str, Any]:
        if user is None or not user.is_authenticated:
            return {"classes": [], "live": []}
        return {
            "classes": list(selectors.classes_of_learner(user)[:20]),
            "live": selectors.live_sessions_of_learner(user),
        }

    return {"my_classes": SimpleLazyObject(load)}
