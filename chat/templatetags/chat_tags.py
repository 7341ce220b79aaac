"""Template helpers for conversations."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from chat import frames
from chat.models import Message

register = template.Library()


@register.simple_tag
def render_message(message: Message) -> SafeString:
    """A message through the same partial the socket uses."""
    return mark_safe(frames.render_message(message))  # noqa: S308 - the partial escapes
