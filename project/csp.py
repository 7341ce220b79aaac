"""Content-Security-Policy: Django's middleware, plus the page's own websocket origin.

`connect-src 'self'` covers ws:/wss: of the same host only in browsers that implement CSP
Level 3's rule for it; the socket's origin is named explicitly, from the request's host
(already checked against ALLOWED_HOSTS), so every browser lets the page open its socket and
no other.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.middleware.csp import ContentSecurityPolicyMiddleware as DjangoCSPMiddleware

_UNSET = object()


def with_socket_origin(config: dict[str, Any], request: HttpRequest) -> dict[str, Any]:
    """`config` with ws(s)://<this host> added to connect-src (when it has one)."""
    if not config or "connect-src" not in config:
        return config
    try:
        host = request.get_host()
    except DisallowedHost:
        return config
    scheme = "wss" if request.is_secure() else "ws"
    return {**config, "connect-src": [*config["connect-src"], f"{scheme}://{host}"]}


class ContentSecurityPolicyMiddleware(DjangoCSPMiddleware):
    """SECURE_CSP / SECURE_CSP_REPORT_ONLY, with the socket's origin in connect-src."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        # A view that chose its own policy (csp_override) keeps it as it is.
        for attribute, config in (
            ("_csp_config", settings.SECURE_CSP),
            ("_csp_ro_config", settings.SECURE_CSP_REPORT_ONLY),
        ):
            if getattr(response, attribute, _UNSET) is _UNSET:
                setattr(response, attribute, with_socket_origin(config, request))
        return super().process_response(request, response)
