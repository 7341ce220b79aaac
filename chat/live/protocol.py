"""What a browser may send on the socket: one JSON object per frame, validated before use."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

# Keys a frame may not set: htmx adds the request headers; identity never comes from a frame.
_DROPPED_KEYS = ("HEADERS", "user", "user_id", "author", "author_id")


def _too_deep_to_parse(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than `limit` (checked before json.loads,
    whose recursion a deeply nested value exhausts). Only frames with many brackets are
    scanned character by character."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _check_values(payload: dict[str, Any], limit: int) -> str:
    """A notice when the parsed frame nests deeper than `limit` or holds text that is not
    valid Unicode (a lone surrogate such as "\\ud800" cannot be stored or sent), else ""."""
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return _("That frame holds text that is not valid Unicode.")
        elif isinstance(value, dict | list):
            if depth > limit:
                return _("That frame is nested too deeply.")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and not _encodable(key):
                    return _("That frame holds text that is not valid Unicode.")
                stack.append((item, depth + 1))
    return ""


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_frame(text_data: str | None, bytes_data: bytes | None) -> tuple[dict[str, Any], str]:
    """Decode a browser frame; returns (payload, problem) — problem is a notice for the user."""
    if bytes_data is not None and text_data is None:
        return {}, _("Binary frames are not supported.")
    if text_data is None:
        return {}, _("Empty frame.")
    if len(text_data) > settings.MAX_FRAME_BYTES:
        return {}, _("That frame is too large.")
    if _too_deep_to_parse(text_data, settings.MAX_FRAME_DEPTH):
        return {}, _("That frame is nested too deeply.")
    try:
        payload = json.loads(text_data)
    except (ValueError, RecursionError):
        return {}, _("That frame was not valid JSON.")
    if not isinstance(payload, dict):
        return {}, _("That frame was not a JSON object.")
    problem = _check_values(payload, settings.MAX_FRAME_DEPTH)
    if problem:
        return {}, problem
    for key in _DROPPED_KEYS:
        payload.pop(key, None)
    return payload, ""
