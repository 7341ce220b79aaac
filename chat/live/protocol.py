"""What a browser may send on the socket: one JSON object per frame, validated before use."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

# Keys a frame may not set: htmx adds the request headers; identity never comes from a frame.
_DROPPED_KEYS = ("HEADERS", "user", "user_id", "author", "author_id")


def parse_frame(text_data: str | None, bytes_data: bytes | None) -> tuple[dict[str, Any], str]:
    """Decode a browser frame; returns (payload, problem) — problem is a notice for the user."""
    if bytes_data is not None and text_data is None:
        return {}, _("Binary frames are not supported.")
    if text_data is None:
        return {}, _("Empty frame.")
    if len(text_data) > settings.MAX_FRAME_BYTES:
        return {}, _("That frame is too large.")
    try:
        payload = json.loads(text_data)
    except ValueError:
        return {}, _("That frame was not valid JSON.")
    if not isinstance(payload, dict):
        return {}, _("That frame was not a JSON object.")
    for key in _DROPPED_KEYS:
        payload.pop(key, None)
    return payload, ""
