"""Close a person's open sockets when they log out in any tab."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver


def user_group(user_id: int) -> str:
    """The channel-layer group holding every socket a user has open."""
    return f"user.{user_id}"


@receiver(user_logged_out)
def close_sockets_on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is None or not user.pk:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(user_group(user.pk), {"type": "session.ended"})
    except Exception:  # logging out must work even when the channel layer is down
        import logging

        logging.getLogger(__name__).warning("could not close sockets on logout", exc_info=True)
