"""Attendance of live sessions: a learner's pages opening, beating and closing.

Writes, like services.py: atomic, each with its activity event (join is in services.py:
it happens on a page, before any socket).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from chat.classes import activity
from chat.models import Attendance


@transaction.atomic
def page_opened(*, session_id: Any, user: User) -> bool:
    """A learner's page synced: online now (logs a reconnect after a drop); False for others."""
    attendance = (
        Attendance.objects.select_for_update().filter(session_id=session_id, user=user).first()
    )
    if attendance is None:
        return False
    was_online = attendance.online
    first = attendance.first_seen_at is None
    now = timezone.now()
    attendance.connections = F("connections") + 1
    attendance.online, attendance.last_seen = True, now
    attendance.first_seen_at = attendance.first_seen_at or now
    attendance.save(update_fields=["connections", "online", "last_seen", "first_seen_at"])
    if not was_online and not first:
        activity.record(session_id=session_id, kind=activity.RECONNECT, user_id=user.pk)
    return True


@transaction.atomic
def page_closed(*, session_id: Any, user: User) -> bool:
    """A learner's page closed: offline once their last page is gone (logs the leave)."""
    attendance = (
        Attendance.objects.select_for_update().filter(session_id=session_id, user=user).first()
    )
    if attendance is None:
        return False
    remaining = max(0, attendance.connections - 1)
    attendance.connections = remaining
    if remaining == 0 and attendance.online:
        attendance.online = False
        activity.record(session_id=session_id, kind=activity.LEAVE, user_id=user.pk)
    attendance.save(update_fields=["connections", "online"])
    return True


@transaction.atomic
def heartbeat(*, session_id: Any, user: User) -> bool:
    """A learner's page is still there; True when it had been swept out as gone (back now)."""
    now = timezone.now()
    rows = Attendance.objects.filter(session_id=session_id, user=user)
    back = rows.filter(online=False).update(online=True, connections=1, last_seen=now)
    if back:
        activity.record(session_id=session_id, kind=activity.RECONNECT, user_id=user.pk)
    else:
        rows.update(last_seen=now)
    return bool(back)


@transaction.atomic
def sweep_gone(*, session_id: Any) -> list[int]:
    """Learners whose pages missed their heartbeats: offline now (their ids)."""
    cutoff = timezone.now() - timedelta(seconds=settings.PRESENCE_TIMEOUT_SECONDS)
    stale = list(
        Attendance.objects.filter(session_id=session_id, online=True, last_seen__lt=cutoff)
        .select_for_update()
        .values_list("user_id", flat=True)
    )
    if stale:
        Attendance.objects.filter(session_id=session_id, user_id__in=stale).update(
            online=False, connections=0
        )
        for user_id in stale:
            activity.record(session_id=session_id, kind=activity.LEAVE, user_id=user_id,
                            data={"missed_heartbeats": True})  # fmt: skip
    return stale
