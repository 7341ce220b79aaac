"""How many rooms a person may create, and rename or re-invite, per hour (cache counters).

One account created 40 public rooms in 0.3 s and filled the first page of everyone's room
list. Counters live in the shared cache (fixed one-hour windows per person and kind); a
cache that is down degrades to local memory (project/cache.py), so the limits stay on.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

WINDOW_SECONDS = 3600
CREATE = "create"
CHANGE = "change"  # renames and new invite links


def _limit(kind: str) -> int:
    return settings.ROOMS_CREATED_PER_HOUR if kind == CREATE else settings.ROOM_CHANGES_PER_HOUR


def spend(user_id: int, kind: str, *, now: float | None = None) -> bool:
    """Count one room creation or change for the user; False when over this hour's limit."""
    now = time.time() if now is None else now
    key = f"rooms:{kind}:{user_id}:{int(now // WINDOW_SECONDS)}"
    cache.add(key, 0, timeout=WINDOW_SECONDS + 60)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=WINDOW_SECONDS + 60)
        count = 1
    return count <= _limit(kind)
