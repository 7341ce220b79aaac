"""Close a person's open sockets when they log out in any tab."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from chat import events


@receiver(user_logged_out)
def close_sockets_on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Every page the user has open closes with 4401."""
    if user is None or not user.pk:
        return
    # Logging out must work even when the channel layer is down (publish_now logs failures).
    events.publish_now(events.user_group(user.pk), events.session_ended())
