"""The daily AI quota: a ledger of replies started, counted per day in TIME_ZONE."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from accounts.models import User
from chat import frames
from chat.models import AIUsage, Message


def quota_zone() -> zoneinfo.ZoneInfo:
    """The site's time zone: the quota day turns over at its midnight."""
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def quota_day(now: dt.datetime | None = None) -> dt.date:
    """Today's date in the site's time zone."""
    return (now or timezone.now()).astimezone(quota_zone()).date()


def reset_at(now: dt.datetime | None = None) -> dt.datetime:
    """When today's quota resets: the next midnight in the site's time zone."""
    tomorrow = quota_day(now) + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time.min, tzinfo=quota_zone())


def daily_limit(user: User) -> int:
    """The user's own limit when staff set one, else the site default."""
    if user.daily_ai_limit is not None:
        return user.daily_ai_limit
    return settings.AI_DAILY_LIMIT


def used_today(user_id: int, now: dt.datetime | None = None) -> int:
    """Replies counted today: every started reply that was not refunded.

    Written out like `lock`'s statement (it runs under that lock, before the model is
    asked): the queryset took longer to build than to run.
    """
    connection = connections[AIUsage.objects.db]
    quote = connection.ops.quote_name
    meta = AIUsage._meta
    day = meta.get_field("day").get_db_prep_value(quota_day(now), connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {quote(meta.db_table)} WHERE {quote('user_id')} = %s "
            f"AND {quote('day')} = %s AND {quote('refunded')} = %s",
            [user_id, day, False],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def remaining(user: User, now: dt.datetime | None = None) -> int:
    """How many AI replies the user has left today."""
    return max(0, daily_limit(user) - used_today(user.pk, now))


def lock(user: User, now: dt.datetime | None = None) -> int:
    """Lock the user's quota and return how many replies are left today.

    Must run inside a transaction: the user's row is locked until it ends, so two tabs
    racing for the last reply are serialised (SQLite serialises all writers anyway). The
    limit is re-read with the lock, so staff changes apply at once.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("quota.lock() must run inside transaction.atomic()")
    # Two statements on purpose: in PostgreSQL a count inside the locking statement would
    # read the snapshot taken before the lock was granted, and two tabs would both win
    # (tests/unit/test_quota.py races them). The lock is written out: building the locking
    # queryset took longer than running it, on the send path before the model is asked.
    connection = connections[User.objects.db]
    quote = connection.ops.quote_name
    lock_row = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {quote('daily_ai_limit')} FROM {quote(User._meta.db_table)} "
            f"WHERE {quote('id')} = %s{lock_row}",
            [user.pk],
        )
        row = cursor.fetchone()
    if row is None:
        raise User.DoesNotExist(user.pk)
    limit, used = row[0], used_today(user.pk, now)  # counted after the lock was granted
    return (settings.AI_DAILY_LIMIT if limit is None else limit) - used


def record(
    user: User, *, message: Message | None = None, now: dt.datetime | None = None
) -> AIUsage:
    """Count one reply started today (after `lock` said one is left), for `message`."""
    return AIUsage.objects.create(user_id=user.pk, day=quota_day(now), message=message)


def reserve(user: User, now: dt.datetime | None = None) -> tuple[AIUsage | None, int]:
    """Take one reply from today's quota; (None, 0) when none is left (inside a transaction)."""
    left = lock(user, now)
    if left <= 0:
        return None, 0
    return record(user, now=now), left - 1


def settle(usage_id: int, outcome: str, *, refund: bool) -> None:
    """Record how a reply ended; a refunded reply gives the credit back."""
    AIUsage.objects.filter(pk=usage_id).update(outcome=outcome, refunded=refund)


def context(user: User) -> dict[str, Any]:
    """The quota badge's template context: remaining replies, the limit, the reset time."""
    return {"remaining": remaining(user), "limit": daily_limit(user), "reset_at": reset_at()}


def context_of_request(request: Any) -> dict[str, Any]:
    """`context(request.user)`, read once per request (the view and the header both show it)."""
    found: dict[str, Any] | None = getattr(request, "_practalk_quota", None)
    if found is None:
        found = context(request.user)
        request._practalk_quota = found
    return found


def frame_for(user_id: int) -> str:
    """The quota badge as a socket frame, read fresh (staff may have changed the limit)."""
    user = User.objects.get(pk=user_id)
    return frames.quota(remaining(user), daily_limit(user), reset_at())
