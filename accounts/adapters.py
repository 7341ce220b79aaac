"""allauth adapters: nickname on sign-up, safe social sign-in."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from accounts.middleware import remember_language, saved_language
from accounts.models import User, normalize_email


class AccountAdapter(DefaultAccountAdapter):
    """Store e-mail lower-cased so uniqueness ignores case; sign in to one's own language."""

    def clean_email(self, email: str) -> str:
        return normalize_email(super().clean_email(email))

    def post_login(self, request: HttpRequest, user: Any, **kwargs: Any) -> HttpResponse:
        """Switch to the person's saved language at once, and keep it in the language cookie.

        At once, so the "signed in" message is in the language of the page that shows it.
        """
        language = saved_language(user)
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        response = super().post_login(request, user, **kwargs)
        if language:
            remember_language(response, language)
        return response


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    """Give social sign-ups a nickname from the provider's profile."""

    def populate_user(self, request: HttpRequest, sociallogin: Any, data: dict[str, Any]) -> User:
        user = super().populate_user(request, sociallogin, data)
        extra = sociallogin.account.extra_data or {}
        nickname = (
            data.get("name")
            or extra.get("name")
            or extra.get("login")
            or (extra.get("properties") or {}).get("nickname")
            or (user.email or "").split("@", 1)[0]
        )
        user.nickname = (nickname or "")[:40]
        if user.email:
            user.email = normalize_email(user.email)
        return user
