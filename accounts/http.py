"""The request type views see: signed in (behind login_required) and through django-htmx."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from accounts.models import User


class HtmxHttpRequest(HttpRequest):
    """A request that went through django-htmx's middleware, by a signed-in person."""

    htmx: HtmxDetails
    user: User  # type: ignore[assignment]  # narrowed: every such view is login_required
