"""The daily AI quota: limits, the day in TIME_ZONE, refunds, and racing for the last reply."""

from __future__ import annotations

import datetime as dt
import threading
import time
import zoneinfo
from pathlib import Path

import pytest
from django.db import connections, transaction

from chat.coach import quota
from chat.models import AIUsage
from tests.pgscript import run_on_postgres

ROOT = Path(__file__).resolve().parents[2]
SEOUL = zoneinfo.ZoneInfo("Asia/Seoul")
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(autouse=True)
def seoul(settings):
    settings.TIME_ZONE = "Asia/Seoul"
    settings.AI_DAILY_LIMIT = 5


def seoul_time(day: int, hour: int, minute: int) -> dt.datetime:
    return dt.datetime(2025, 3, day, hour, minute, tzinfo=SEOUL)


def reserve(user, now: dt.datetime | None = None):
    with transaction.atomic():
        return quota.reserve(user, now)


@pytest.mark.django_db
def test_limit_comes_from_ai_daily_limit(make_user, settings):
    settings.AI_DAILY_LIMIT = 3
    user = make_user()

    assert quota.daily_limit(user) == 3
    assert quota.remaining(user) == 3


@pytest.mark.django_db
def test_a_users_own_limit_overrides_the_site_default(make_user, settings):
    settings.AI_DAILY_LIMIT = 3
    generous = make_user(daily_ai_limit=10)
    blocked = make_user(daily_ai_limit=0)

    assert quota.daily_limit(generous) == 10
    assert quota.daily_limit(blocked) == 0
    assert reserve(blocked) == (None, 0)


@pytest.mark.django_db
def test_sixth_reply_is_refused(make_user):
    user = make_user()

    left = [reserve(user)[1] for _ in range(5)]
    usage, remaining = reserve(user)

    assert left == [4, 3, 2, 1, 0]
    assert usage is None
    assert remaining == 0
    assert quota.remaining(user) == 0
    assert AIUsage.objects.filter(user=user).count() == 5


@pytest.mark.django_db
def test_a_staff_change_to_the_limit_applies_at_once(make_user):
    user = make_user(daily_ai_limit=1)
    reserve(user)
    assert reserve(user)[0] is None

    type(user).objects.filter(pk=user.pk).update(daily_ai_limit=2)

    # The same stale in-memory user: reserve() re-reads the limit under the lock.
    assert reserve(user)[0] is not None


@pytest.mark.django_db
def test_replies_at_2359_and_0001_seoul_count_on_different_days(make_user):
    user = make_user(daily_ai_limit=1)
    before_midnight = seoul_time(10, 23, 59)
    after_midnight = seoul_time(11, 0, 1)

    first, _ = reserve(user, before_midnight)
    second, _ = reserve(user, after_midnight)
    third, _ = reserve(user, seoul_time(11, 0, 2))

    assert first is not None and second is not None
    assert (first.day, second.day) == (dt.date(2025, 3, 10), dt.date(2025, 3, 11))
    assert third is None
    assert quota.remaining(user, before_midnight) == 0
    assert quota.remaining(user, after_midnight) == 0


@pytest.mark.django_db
def test_the_day_follows_seoul_not_utc(make_user):
    # 23:59 in Seoul is 14:59 UTC; 00:01 in Seoul is 15:01 UTC on the SAME UTC day.
    before = seoul_time(10, 23, 59).astimezone(dt.UTC)
    after = seoul_time(11, 0, 1).astimezone(dt.UTC)

    assert before.date() == after.date()
    assert quota.quota_day(before) != quota.quota_day(after)
    assert quota.reset_at(before) == seoul_time(11, 0, 0)
    assert quota.reset_at(after) == seoul_time(12, 0, 0)


@pytest.mark.django_db
def test_a_failed_reply_is_refunded(make_user):
    user = make_user(daily_ai_limit=2)
    usage, _ = reserve(user)
    assert quota.remaining(user) == 1

    quota.settle(usage.pk, "failed", refund=True)

    assert quota.remaining(user) == 2
    usage.refresh_from_db()
    assert (usage.outcome, usage.refunded) == ("failed", True)


@pytest.mark.django_db
def test_a_stopped_or_complete_reply_still_counts(make_user):
    user = make_user(daily_ai_limit=2)
    for outcome in ("stopped", "complete"):
        usage, _ = reserve(user)
        quota.settle(usage.pk, outcome, refund=False)

    assert quota.remaining(user) == 0


@pytest.mark.django_db(transaction=True)
def test_reserve_outside_a_transaction_is_a_bug(make_user):
    user = make_user()

    with pytest.raises(RuntimeError, match="transaction"):
        quota.reserve(user)


# --- racing for the last reply ----------------------------------------------------------------


def race(user, contenders: int, monkeypatch) -> list[bool]:
    """`contenders` threads reserve at the same moment; returns who got a reply."""
    count = quota.used_today

    def slow_count(*args, **kwargs):
        # Widen the window between "how many are used" and "take one": without a lock,
        # every contender would read the same count and all would win.
        used = count(*args, **kwargs)
        time.sleep(0.05)
        return used

    monkeypatch.setattr(quota, "used_today", slow_count)
    start = threading.Barrier(contenders)
    won: list[bool] = [False] * contenders
    errors: list[BaseException] = []

    def contender(i: int) -> None:
        try:
            start.wait(timeout=5)
            with transaction.atomic():
                usage, _left = quota.reserve(user)
            won[i] = usage is not None
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not errors, errors
    return won


@pytest.mark.django_db(transaction=True)
def test_two_tabs_racing_for_the_last_reply_exactly_one_wins(make_user, monkeypatch):
    user = make_user(daily_ai_limit=1)

    won = race(user, 2, monkeypatch)

    assert sorted(won) == [False, True]
    assert AIUsage.objects.filter(user=user).count() == 1


@pytest.mark.django_db(transaction=True)
def test_six_racers_for_two_replies_exactly_two_win(make_user, monkeypatch):
    user = make_user(daily_ai_limit=3)
    reserve(user)

    won = race(user, 6, monkeypatch)

    assert won.count(True) == 2
    assert AIUsage.objects.filter(user=user).count() == 3


POSTGRES_RACE = """
from accounts.models import User
from chat.coach import quota
from chat.models import AIUsage
user = User.objects.create_user(email="racer@example.com", password="x", daily_ai_limit=1)
count = quota.used_today

def slow_count(*args, **kwargs):
    used = count(*args, **kwargs)
    time.sleep(0.05)
    return used

quota.used_today = slow_count
start = threading.Barrier(2)
won, errors = [], []

def contender():
    try:
        start.wait(timeout=5)
        with transaction.atomic():
            usage, _left = quota.reserve(user)
        won.append(usage is not None)
    except BaseException as exc:
        errors.append(repr(exc))
    finally:
        connections.close_all()

threads = [threading.Thread(target=contender) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=20)
rows = AIUsage.objects.filter(user=user).count()
print(json.dumps({
    "vendor": connection.vendor, "won": sorted(won), "rows": rows, "errors": errors,
}))
"""


def test_two_tabs_racing_on_postgresql_exactly_one_wins(tmp_path):
    # A fresh database of its own, so this run never meets another one's rows.
    report = run_on_postgres(POSTGRES_RACE, tmp_path)
    assert report == {"vendor": "postgresql", "won": [False, True], "rows": 1, "errors": []}
