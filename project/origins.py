"""Which web origins may open a socket: the site's own, compared on scheme, host and port.

Channels' `AllowedHostsOriginValidator` compares the Origin's host name with ALLOWED_HOSTS
only, so a page served from another port or scheme of the same host (another web origin,
e.g. `http://127.0.0.1:8822` next to the site on `:8000`) could drive a signed-in victim's
socket with their session cookie. Here an Origin must equal, scheme, host and port, either
one of CSRF_TRUSTED_ORIGINS or the origin of the request itself (its Host header, which must
be an allowed host, and its scheme: `wss` or the proxy's header per SECURE_PROXY_SSL_HEADER).
A missing or opaque ("null") Origin is refused: browsers always send one on websockets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin such as `https://Example.com:443`, or None."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def request_scheme(scope: Scope) -> str:
    """`https` or `http`, as Django's `request.is_secure()` would decide for this socket."""
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        header, secure_value = proxy
        name = header.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")
        value = _header(scope, name)
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme") in ("wss", "https") else "http"


def own_origin(scope: Scope) -> tuple[str, str, int] | None:
    """The origin the socket's request was made to, when its Host is an allowed host."""
    host = _header(scope, b"host")
    if not host:
        return None
    domain, _port = split_domain_port(host.lower())
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    return normalise(f"{request_scheme(scope)}://{host}")


def trusted_origins() -> set[tuple[str, str, int]]:
    """CSRF_TRUSTED_ORIGINS, normalised (wildcard subdomain entries are not used for sockets)."""
    found = (normalise(o) for o in settings.CSRF_TRUSTED_ORIGINS if "*" not in o)
    return {o for o in found if o is not None}


def origin_allowed(scope: Scope) -> bool:
    """Whether the socket's Origin header is one of the site's own origins."""
    origin = _header(scope, b"origin")
    wanted = normalise(origin) if origin else None
    if wanted is None:
        return False
    return wanted == own_origin(scope) or wanted in trusted_origins()


class SiteOriginValidator:
    """ASGI middleware: a websocket from any other origin is refused at the handshake (403)."""

    def __init__(self, application: ASGIApp) -> None:
        self.application = application

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") == "websocket" and not origin_allowed(scope):
            denier = WebsocketDenier()
            await denier(scope, receive, send)
            return
        await self.application(scope, receive, send)
