"""Gateway identity: trust users asserted by an API gateway that signs each request.

Off unless ``GATEWAY_SHARED_SECRET`` is set. The protocol is described in docs/gateway.md.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger(__name__)

HEADER_USER_ID = "X-Gateway-User-Id"
HEADER_EMAIL = "X-Gateway-Email"
HEADER_NICKNAME = "X-Gateway-Nickname"
HEADER_TIMESTAMP = "X-Gateway-Timestamp"
HEADER_SIGNATURE = "X-Gateway-Signature"
# Optional: without it two requests for one user in the same second would carry the same
# signature, and the replay check would refuse the second one.
HEADER_NONCE = "X-Gateway-Nonce"

REQUIRED_HEADERS = (
    HEADER_USER_ID,
    HEADER_EMAIL,
    HEADER_NICKNAME,
    HEADER_TIMESTAMP,
    HEADER_SIGNATURE,
)
HEADER_PREFIX = "x-gateway-"

DEFAULT_MAX_AGE_SECONDS = 300
FUTURE_SKEW_SECONDS = 30
MAX_FIELD_LENGTH = 254  # EmailField's limit; ids and nicknames get the same generous bound.
MAX_NONCE_LENGTH = 128
NICKNAME_MAX_LENGTH = 40  # accounts.User.nickname

_TIMESTAMP_RE = re.compile(r"0|[1-9][0-9]{0,11}")
_SIGNATURE_RE = re.compile(r"[0-9a-fA-F]{64}")
# Control characters (newline above all) would make the newline-joined canonical string
# ambiguous, so they are refused in every field.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

SEEN_KEY_PREFIX = "gateway:sig:"


@dataclass(frozen=True, slots=True)
class GatewayIdentity:
    """A user asserted by the gateway, with the signature that vouched for it."""

    user_id: str
    email: str
    nickname: str
    timestamp: int
    signature: str
    nonce: str = ""


class GatewayRefusedError(Exception):
    """A verified identity that must not be signed in (conflicting mapping, inactive user)."""


# --- Settings, read at call time so override_settings works --------------------------------


def shared_secret() -> str:
    """The configured shared secret; empty means the feature is off."""
    return getattr(settings, "GATEWAY_SHARED_SECRET", "") or ""


def max_age_seconds() -> int:
    """How old a signed timestamp may be."""
    return int(getattr(settings, "GATEWAY_MAX_AGE_SECONDS", DEFAULT_MAX_AGE_SECONDS))


# --- Signing (gateway side; used by tests, docs and benchmarks) -----------------------------


def _check_field(
    name: str, value: str, *, max_length: int = MAX_FIELD_LENGTH, may_pad: bool = False
) -> None:
    """Raise ValueError unless ``value`` can be a field of the canonical string."""
    if not value:
        raise ValueError(f"{name} must not be empty")
    if not may_pad and value != value.strip():
        # HTTP servers strip the blanks around a header value, so they could never verify.
        raise ValueError(f"{name} must not start or end with blanks")
    if len(value) > max_length:
        raise ValueError(f"{name} is longer than {max_length} characters")
    if _CONTROL_RE.search(value):
        raise ValueError(f"{name} must not contain control characters (newlines above all)")


def canonical_string(
    *, user_id: str, email: str, nickname: str, timestamp: int | str, nonce: str = ""
) -> str:
    """The exact text the gateway signs: fields joined by newlines, nonce last if present."""
    _check_field("user_id", user_id)
    _check_field("email", email)
    _check_field("nickname", nickname, may_pad=True)  # travels percent-encoded
    ts = str(timestamp)
    if not _TIMESTAMP_RE.fullmatch(ts):
        raise ValueError("timestamp must be a non-negative integer of unix seconds")
    fields = [user_id, email, nickname, ts]
    if nonce:
        _check_field("nonce", nonce, max_length=MAX_NONCE_LENGTH)
        fields.append(nonce)
    return "\n".join(fields)


def sign(
    *, user_id: str, email: str, nickname: str, timestamp: int, secret: str, nonce: str = ""
) -> str:
    """Hex HMAC-SHA256 of the canonical string (UTF-8) under ``secret``."""
    if not secret:
        raise ValueError("secret must not be empty")
    message = canonical_string(
        user_id=user_id, email=email, nickname=nickname, timestamp=timestamp, nonce=nonce
    )
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def build_headers(
    *,
    user_id: str,
    email: str,
    nickname: str,
    secret: str,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Signed gateway headers; a fresh nonce unless ``nonce=""`` asks for the 4-field form."""
    ts = int(time.time()) if timestamp is None else timestamp
    if nonce is None:
        nonce = secrets.token_hex(16)
    headers = {
        HEADER_USER_ID: user_id,
        HEADER_EMAIL: email,
        # Percent-encoded so a Korean nickname travels as ASCII: HTTP header values are bytes
        # that servers decode as Latin-1, and many proxies mangle anything outside ASCII.
        HEADER_NICKNAME: quote(nickname, safe=""),
        HEADER_TIMESTAMP: str(ts),
        HEADER_SIGNATURE: sign(
            user_id=user_id,
            email=email,
            nickname=nickname,
            timestamp=ts,
            secret=secret,
            nonce=nonce,
        ),
    }
    if nonce:
        headers[HEADER_NONCE] = nonce
    return headers


# --- Verifying (application side) -----------------------------------------------------------


def _header_text(value: str | bytes) -> str | None:
    """Header value as text: raw bytes are read as UTF-8; None if they are not valid UTF-8."""
    if isinstance(value, str):
        try:
            # WSGI and ASGI servers hand header bytes over decoded as Latin-1: undo that.
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            return value  # already real text (an in-process test client, for instance)
    else:
        raw = value
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _gateway_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The X-Gateway-* headers, keyed by lower-cased name."""
    return {
        name.lower(): value
        for name, value in headers.items()
        if name.lower().startswith(HEADER_PREFIX)
    }


def verify(
    headers: Mapping[str, str],
    *,
    secret: str,
    now: float | None = None,
    max_age: int | None = None,
) -> GatewayIdentity | None:
    """The identity the headers assert if they are complete, fresh and correctly signed."""
    if not secret:
        return None
    found = _gateway_headers(headers)
    if not found:
        return None
    if any(name.lower() not in found for name in REQUIRED_HEADERS):
        logger.info("Gateway headers ignored: incomplete (%s)", sorted(found))
        return None

    user_id = _header_text(found[HEADER_USER_ID.lower()])
    email = _header_text(found[HEADER_EMAIL.lower()])
    raw_nickname = _header_text(found[HEADER_NICKNAME.lower()])
    ts_text = found[HEADER_TIMESTAMP.lower()].strip()
    signature = found[HEADER_SIGNATURE.lower()].strip()
    nonce = _header_text(found.get(HEADER_NONCE.lower(), "")) or ""
    if user_id is None or email is None or raw_nickname is None:
        logger.warning("Gateway headers ignored: not valid UTF-8")
        return None
    try:
        nickname = unquote(raw_nickname, errors="strict")
    except UnicodeDecodeError:
        logger.warning("Gateway headers ignored: nickname is not percent-encoded UTF-8")
        return None
    if not _TIMESTAMP_RE.fullmatch(ts_text) or not _SIGNATURE_RE.fullmatch(signature):
        logger.warning("Gateway headers ignored: malformed timestamp or signature")
        return None

    timestamp = int(ts_text)
    current = time.time() if now is None else now
    age_limit = max_age_seconds() if max_age is None else max_age
    if timestamp < current - age_limit:
        logger.warning("Gateway headers ignored: stale (%.0f s old)", current - timestamp)
        return None
    if timestamp > current + FUTURE_SKEW_SECONDS:
        logger.warning("Gateway headers ignored: %.0f s in the future", timestamp - current)
        return None

    try:
        expected = sign(
            user_id=user_id,
            email=email,
            nickname=nickname,
            timestamp=timestamp,
            secret=secret,
            nonce=nonce,
        )
    except ValueError as exc:
        logger.warning("Gateway headers ignored: %s", exc)
        return None
    # Hex is case-insensitive; compare (and later remember) one spelling so that upper-casing
    # a seen signature is not a way round the replay check.
    signature = signature.lower()
    if not hmac.compare_digest(expected, signature):
        logger.warning("Gateway headers ignored: bad signature (claimed user_id=%r)", user_id)
        return None
    return GatewayIdentity(user_id, email, nickname, timestamp, signature, nonce)


def claim_once(signature: str) -> bool:
    """True the first time a signature is seen (in this cache), False on every replay."""
    # Kept a little longer than a signature can be fresh (max age back, 30 s ahead).
    timeout = max_age_seconds() + FUTURE_SKEW_SECONDS
    return bool(cache.add(SEEN_KEY_PREFIX + signature.lower(), 1, timeout=timeout))


def resolve_user(identity: GatewayIdentity) -> User:
    """The account for a verified identity, created on first sight; raises GatewayRefusedError.

    The gateway id is the key (a `GatewayAccount` row, unique on both sides): the account a
    gateway id first reached stays its account, and an e-mail whose account already answers
    to another gateway id is refused.
    """
    # Imported here so build_headers() works in tools (benchmarks) that never set Django up.
    from accounts.models import GatewayAccount, normalize_email

    email = normalize_email(identity.email)
    try:
        validate_email(email)
    except ValidationError as exc:
        raise GatewayRefusedError(f"not an e-mail address: {email!r}") from exc

    link = GatewayAccount.objects.select_related("user").filter(gateway_id=identity.user_id).first()
    user = link.user if link is not None else _claim_account(identity, email)
    if not user.is_active:
        raise GatewayRefusedError(f"account {user.pk} is inactive")
    return user


def _claim_account(identity: GatewayIdentity, email: str) -> User:
    """Link a gateway id to the account of its e-mail, creating the account if there is none."""
    from accounts.models import GatewayAccount

    user_model = get_user_model()
    try:
        with transaction.atomic():
            user = user_model.objects.filter(email=email).first()
            if user is None:
                # No password: a gateway account can only be reached through the gateway.
                user = user_model.objects.create_user(
                    email, None, nickname=identity.nickname[:NICKNAME_MAX_LENGTH]
                )
                logger.info("Gateway user %r got new account %s", identity.user_id, user.pk)
            else:
                other = GatewayAccount.objects.filter(user=user).first()
                if other is not None:
                    raise GatewayRefusedError(
                        f"{email!r} belongs to gateway user {other.gateway_id!r}, "
                        f"not {identity.user_id!r}"
                    )
            GatewayAccount.objects.create(gateway_id=identity.user_id, user=user)
    except IntegrityError:
        # Another request linked it between our lookup and insert: the database decided.
        link = GatewayAccount.objects.select_related("user").filter(gateway_id=identity.user_id)
        found = link.first()
        if found is None:
            raise GatewayRefusedError(
                f"{email!r} was just claimed by another gateway user"
            ) from None
        return found.user
    return user


def authenticate_headers(headers: Mapping[str, str]) -> tuple[GatewayIdentity, User] | None:
    """Verify, claim and resolve in one go (sync); None when the headers are to be ignored."""
    identity = verify(headers, secret=shared_secret())
    if identity is None:
        return None
    if not claim_once(identity.signature):
        logger.warning("Gateway headers ignored: replayed signature (user_id=%r)", identity.user_id)
        return None
    try:
        user = resolve_user(identity)
    except GatewayRefusedError as exc:
        logger.warning("Gateway identity refused: %s", exc)
        return None
    return identity, user


def _has_gateway_header(names: Iterable[str]) -> bool:
    """Cheap pre-check so requests without gateway headers never leave the event loop."""
    return any(name.lower().startswith(HEADER_PREFIX) for name in names)


# --- Django HTTP middleware -----------------------------------------------------------------


def _apply_to_request(request: HttpRequest, identity: GatewayIdentity, user: User) -> None:
    """Make ``user`` the user of this request only."""
    # Deliberately not login(): the gateway vouches for each request on its own. A session
    # would keep the user signed in after the gateway stops vouching (logout, revocation at
    # the identity provider) and would be honoured even by requests that bypass the gateway;
    # it would also cost a session write and a rotated cookie on every request.
    request.user = user

    async def auser() -> User:
        return user

    request.auser = auser  # async views read the user through request.auser()
    request.gateway_identity = identity  # type: ignore[attr-defined]


class GatewayIdentityMiddleware:
    """Sign a request in as the gateway-asserted user; place after AuthenticationMiddleware."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        if shared_secret() and _has_gateway_header(request.headers):
            result = authenticate_headers(request.headers)
            if result is not None:
                _apply_to_request(request, *result)
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        """The async path: the ORM and cache work runs in a thread only when headers exist."""
        if shared_secret() and _has_gateway_header(request.headers):
            result = await sync_to_async(authenticate_headers)(dict(request.headers))
            if result is not None:
                _apply_to_request(request, *result)
        return await self.get_response(request)


# --- Channels websocket middleware ------------------------------------------------------------

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _scope_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str] | None:
    """The handshake headers as text; None if a gateway header appears twice."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name in headers and name.startswith(HEADER_PREFIX):
            # A client-supplied copy next to the gateway's: refuse rather than pick one.
            logger.warning("Gateway headers ignored: %s appears more than once", name)
            return None
        headers[name] = value
    return headers


class GatewayWebsocketMiddleware:
    """Channels middleware: the gateway-asserted user becomes scope["user"] (wrap inside auth)."""

    def __init__(self, inner: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("headers") or ()
        if shared_secret() and _has_gateway_header(name.decode("latin-1") for name, _ in raw):
            headers = _scope_headers(raw)
            result = (
                await database_sync_to_async(authenticate_headers)(headers) if headers else None
            )
            if result is not None:
                identity, user = result
                # A copy, as AuthMiddleware does: the scope may be shared with outer layers.
                scope = dict(scope, user=user, gateway_identity=identity)
        await self.inner(scope, receive, send)
