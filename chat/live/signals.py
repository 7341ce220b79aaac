"""Close a person's open sockets when the rights they were opened with end.

Logging out in any tab, a password change or reset, deactivation, deletion and a change of
role or staff status all close every page the person has open with 4401; the page's next
handshake is checked afresh. A session that expires (or is deleted) with no such event is
caught by the socket's own heartbeat (`chat.live.sessions.still_signed_in`).
"""

from __future__ import annotations

from typing import Any

from allauth.account.signals import password_changed, password_reset, password_set
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_init, post_save, pre_delete
from django.dispatch import receiver

from chat import events

User = get_user_model()

# What a socket's rights depend on: a change to any of these closes the user's sockets.
WATCHED_FIELDS = ("is_active", "role", "is_staff", "is_superuser", "password")


def close_sockets(user_id: int | None) -> None:
    """Every page of the user closes with 4401, once the current transaction commits."""
    if not user_id:
        return
    # Must work even when the channel layer is down (publish_now logs failures).
    transaction.on_commit(
        lambda: events.publish_now(events.user_group(user_id), events.session_ended())
    )


@receiver(user_logged_out)
def close_sockets_on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Every page the user has open closes with 4401."""
    if user is None or not user.pk:
        return
    close_sockets(user.pk)


@receiver(password_changed)
@receiver(password_set)
@receiver(password_reset)
def close_sockets_on_password_change(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """A new password ends every socket opened before it (the page reconnects if still valid)."""
    close_sockets(getattr(user, "pk", None))


@receiver(post_init, sender=User)
def remember_rights(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Keep the loaded values of the watched fields, to see on save what changed."""
    instance._socket_rights = tuple(instance.__dict__.get(f) for f in WATCHED_FIELDS)


@receiver(post_save, sender=User)
def close_sockets_on_rights_change(
    sender: Any, instance: Any, created: bool, **kwargs: Any
) -> None:
    """Deactivation, a new role or staff status, or a new password: the user's sockets close."""
    now = tuple(instance.__dict__.get(f) for f in WATCHED_FIELDS)
    before = getattr(instance, "_socket_rights", now)
    instance._socket_rights = now
    if created or before == now:
        return
    close_sockets(instance.pk)


@receiver(pre_delete, sender=User)
def close_sockets_on_delete(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A deleted account's pages close."""
    close_sockets(instance.pk)
