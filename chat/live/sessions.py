"""Whether a socket's session still vouches for its user (checked on every heartbeat).

The handshake checks the session once; a socket then lives for hours. A session that
expired, was deleted (logged out elsewhere, flushed by staff), or whose auth hash no longer
matches the user's (password changed) no longer vouches for anyone, and neither does an
account that was deactivated or deleted: the heartbeat closes such a socket with 4401.
Cost: one session read and one user read, in the heartbeat's one thread hop.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.utils.crypto import constant_time_compare

from accounts.models import User


def session_key_of(scope: dict[str, Any]) -> str | None:
    """The session key the socket was opened with (None: no session, e.g. the gateway)."""
    session = scope.get("session")
    return getattr(session, "session_key", None) if session is not None else None


def _hash_matches(user: User, stored: object) -> bool:
    if not isinstance(stored, str) or not stored:
        return False
    if constant_time_compare(stored, user.get_session_auth_hash()):
        return True
    # Sessions signed with a key being rotated out stay valid, as in django.contrib.auth.
    fallbacks = getattr(user, "get_session_auth_fallback_hash", None)
    return fallbacks is not None and any(constant_time_compare(stored, h) for h in fallbacks())


def still_signed_in(session_key: str | None, user_id: int, *, sessionless: bool = False) -> bool:
    """True while the session still exists, names this user, matches their password, and
    the account is active. A socket with no session (gateway) is checked on the account only."""
    user = User.objects.filter(pk=user_id).first()
    if user is None or not user.is_active:
        return False
    if sessionless:
        return True
    if not session_key:
        return False
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    data = store.load()  # {} when the session expired or no longer exists
    if not data or str(data.get(SESSION_KEY)) != str(user_id):
        return False
    if data.get(BACKEND_SESSION_KEY) is None:
        return False
    return _hash_matches(user, data.get(HASH_SESSION_KEY))
