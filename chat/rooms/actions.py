"""What a room page may send on its socket."""

from __future__ import annotations

import time
from typing import Any

from chat import events, frames
from chat.actions import Page, action, register
from chat.coach.actions import on_regenerate, on_send, on_stop
from chat.models import Conversation

ROOM = [Conversation.Kind.ROOM]
TYPING_EVERY = 2.0  # seconds between two "is typing" frames of one page

register("send", on_send, kinds=ROOM)
register("stop", on_stop, kinds=ROOM)
# Refused with a clear notice: only practice replies can be regenerated.
register("regenerate", on_regenerate, kinds=ROOM)


@action("typing", kinds=ROOM)
async def on_typing(page: Page, payload: dict[str, Any]) -> None:
    """Tell the room who is typing, at most every TYPING_EVERY seconds per page."""
    now = time.monotonic()
    if now - page.state.get("last_typing", 0.0) < TYPING_EVERY:
        return
    page.state["last_typing"] = now
    await events.publish(
        events.conv_group(page.conversation.pk),
        events.frame(frames.typing(page.user.pk, page.user.display_name)),
    )
