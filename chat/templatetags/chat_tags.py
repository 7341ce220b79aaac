"""Template helpers for conversations."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from chat import frames
from chat.models import Message

register = template.Library()


@register.simple_tag
def message_item(message: Message) -> SafeString:
    """A message in the page's list: the socket's partial, from the process's rendered items.

    The same markup as `frames.render_message` sends (tests/unit/test_message_list.py);
    a finished message seen before is not rendered again (`frames.RenderedItems`).
    """
    return frames.rendered_items.html(message)
