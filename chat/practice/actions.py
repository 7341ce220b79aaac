"""What a practice page may send on its socket."""

from __future__ import annotations

from chat.actions import register
from chat.coach.actions import on_regenerate, on_send, on_stop
from chat.models import Conversation

PRACTICE = [Conversation.Kind.PRACTICE]

register("send", on_send, kinds=PRACTICE)
register("stop", on_stop, kinds=PRACTICE)
register("regenerate", on_regenerate, kinds=PRACTICE)
