"""Per-request settings taken from the browser, or from the person's profile."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, Literal

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation

TZ_COOKIE = "tz"


def user_timezone(request: HttpRequest) -> zoneinfo.ZoneInfo | None:
    """The IANA time zone the browser reported in the `tz` cookie, if valid."""
    name = request.COOKIES.get(TZ_COOKIE, "")
    if not name or len(name) > 64:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


class UserTimezoneMiddleware:
    """Show times in the time zone of the person's browser (set by static/js/app.js)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tz = user_timezone(request)
        if tz is not None:
            timezone.activate(tz)
        else:
            timezone.deactivate()
        return self.get_response(request)


def saved_language(user: Any) -> str:
    """The language a signed-in person chose in their profile, or "" (follow the browser)."""
    if user is None or not user.is_authenticated:
        return ""
    language = getattr(user, "language", "") or ""
    return language if language in dict(settings.LANGUAGES) else ""


class UserLanguageMiddleware:
    """A signed-in person's saved language wins over the language cookie and the browser.

    Runs after LocaleMiddleware (which handles the cookie and Accept-Language) and after
    authentication, so it only has to override when the profile names a language.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = saved_language(getattr(request, "user", None))
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)


def _samesite() -> Literal["Lax", "Strict", "None"]:
    value = settings.LANGUAGE_COOKIE_SAMESITE
    assert value in ("Lax", "Strict", "None")
    return value  # type: ignore[return-value]  # narrowed by the assert above


def remember_language(response: HttpResponse, language: str) -> None:
    """Set Django's language cookie to `language`, or drop it ("" follows the browser)."""
    if language:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE,
            path=settings.LANGUAGE_COOKIE_PATH,
            domain=settings.LANGUAGE_COOKIE_DOMAIN,
            secure=settings.LANGUAGE_COOKIE_SECURE,
            httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
            samesite=_samesite(),
        )
    else:
        response.delete_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            path=settings.LANGUAGE_COOKIE_PATH,
            domain=settings.LANGUAGE_COOKIE_DOMAIN,
            samesite=_samesite(),
        )


def scope_language(scope: dict[str, Any]) -> str:
    """The language of a socket: the profile's, else the language cookie, else the browser's."""
    language = saved_language(scope.get("user"))
    if language:
        return language
    headers = dict(scope.get("headers") or [])
    accept = headers.get(b"accept-language", b"").decode("latin-1")
    # get_language_from_request only reads COOKIES and META: the socket's give the same answer.
    request = SimpleNamespace(
        COOKIES=scope.get("cookies") or {}, META={"HTTP_ACCEPT_LANGUAGE": accept}
    )
    return translation.get_language_from_request(request)  # type: ignore[arg-type]


class LanguageWebsocketMiddleware:
    """Frames a socket sends (notices, the composer, coach errors) in the page's language.

    Inside AuthMiddlewareStack, so the user and the cookies are in the scope. The language
    is active for the consumer's whole life, reply tasks it starts included.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        with translation.override(scope_language(scope)):
            return await self.inner(scope, receive, send)
