"""Writes about people."""

from __future__ import annotations

from django.conf import settings

from accounts.models import User


def user_set_language(*, user: User, language: str) -> None:
    """Remember a person's interface language ("" follows the browser)."""
    if language and language not in dict(settings.LANGUAGES):
        raise ValueError(f"unknown language {language!r}")
    if user.language != language:
        user.language = language
        user.save(update_fields=["language"])
