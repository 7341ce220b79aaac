"""The request type views see: signed in (behind login_required) and through django-htmx."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from accounts.models import User


class HtmxRequest(HttpRequest):
    """A request that went through django-htmx's middleware (signed in or not)."""

    htmx: HtmxDetails


class HtmxHttpRequest(HtmxRequest):
    """A request that went through django-htmx's middleware, by a signed-in person."""

    user: User  # narrowed: every such view is login_required
