"""The class answer's AI feedback in the database: reserve once, settle, refund, reset."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connections

from chat.classes import activity, feedback
from chat.classes import services as classes
from chat.coach import quota
from chat.models import AIUsage, ClassAnswer
from tests.fakes.fake_openai import GOOD_RUBRIC
from tests.pgscript import run_on_postgres


@pytest.fixture(autouse=True)
def model_configured(settings: Any) -> None:
    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = "http://127.0.0.1:9/v1", "x"
    settings.AI_DAILY_LIMIT = 2
    settings.ACTIVITY_REDIS_URL = ""
    activity.reset_client()
    cache.clear()


@pytest.fixture
def answer(make_user: Any) -> Iterator[ClassAnswer]:
    coach = make_user(nickname="Coach", role="coach")
    learner = make_user(nickname="Minji")
    klass = classes.class_create(coach=coach, title="C", questions="Why us?")
    session = classes.session_start(klass=klass, by=coach)
    classes.session_join(session=session, user=learner)
    classes.session_move(session_id=session.pk, by=coach, move="next")
    yield classes.answer_submit(session_id=session.pk, user=learner, step=1, text="I fixed it.")
    activity.flush()  # the log's buffered writes land before the test database goes


@pytest.mark.django_db
def test_asking_reserves_one_unit_and_asking_again_none(answer: ClassAnswer) -> None:
    first = feedback.request(answer_id=answer.pk, user=answer.user)
    again = feedback.request(answer_id=answer.pk, user=answer.user)
    assert first.usage_id is not None and again.usage_id is None
    assert quota.remaining(answer.user) == 1
    feedback.complete(
        answer_id=answer.pk, usage_id=first.usage_id, result=GOOD_RUBRIC, model="m", metadata={}
    )
    assert feedback.request(answer_id=answer.pk, user=answer.user).usage_id is None
    assert AIUsage.objects.get().outcome == "complete"
    shown = feedback.shown(ClassAnswer.objects.get())
    assert [row[0] for row in shown["rows"]] == list(feedback.rubric.RUBRIC_AXES)
    assert shown["strength"] == GOOD_RUBRIC["strength"]


@pytest.mark.django_db
def test_a_failure_refunds_and_the_next_ask_charges_again(answer: ClassAnswer) -> None:
    first = feedback.request(answer_id=answer.pk, user=answer.user)
    assert first.usage_id is not None
    feedback.fail(answer_id=answer.pk, usage_id=first.usage_id, metadata={"problems": ["500"]})
    assert quota.remaining(answer.user) == 2
    assert ClassAnswer.objects.get().ai_status == "failed"
    assert feedback.request(answer_id=answer.pk, user=answer.user).usage_id is not None
    assert quota.remaining(answer.user) == 1


@pytest.mark.django_db
def test_a_rubric_for_words_answered_over_is_not_stored(answer: ClassAnswer) -> None:
    asked = feedback.request(answer_id=answer.pk, user=answer.user)
    assert asked.usage_id is not None
    classes.answer_submit(
        session_id=answer.session_id, user=answer.user, step=1, text="Other words."
    )
    stored = feedback.complete(
        answer_id=answer.pk, usage_id=asked.usage_id, result=GOOD_RUBRIC, model="m", metadata={}
    )
    assert stored is None
    fresh = ClassAnswer.objects.get()
    assert (fresh.ai_status, fresh.ai_feedback, fresh.ai_usage_id) == ("", {}, None)


@pytest.mark.django_db
def test_the_same_words_again_keep_the_feedback(answer: ClassAnswer) -> None:
    asked = feedback.request(answer_id=answer.pk, user=answer.user)
    assert asked.usage_id is not None
    classes.answer_submit(
        session_id=answer.session_id, user=answer.user, step=1, text="I fixed it."
    )
    assert ClassAnswer.objects.get().ai_status == "pending"


@pytest.mark.django_db
def test_refusals(answer: ClassAnswer, make_user: Any, settings: Any) -> None:
    with pytest.raises(feedback.NotAllowedError):
        feedback.request(answer_id=answer.pk, user=make_user(nickname="Other"))
    with pytest.raises(feedback.NotAllowedError):
        feedback.request(answer_id="1; drop", user=answer.user)
    answer.user.daily_ai_limit = 0
    answer.user.save()
    with pytest.raises(feedback.QuotaExhaustedError):
        feedback.request(answer_id=answer.pk, user=answer.user)
    settings.OPENAI_BASE_URL = settings.OPENAI_API_KEY = ""
    with pytest.raises(feedback.OfflineError):
        feedback.request(answer_id=answer.pk, user=answer.user)
    assert not AIUsage.objects.exists()


@pytest.mark.django_db
def test_a_pending_ask_orphaned_by_a_dead_process_is_refunded_and_asked_anew(
    answer: ClassAnswer, settings: Any
) -> None:
    asked = feedback.request(answer_id=answer.pk, user=answer.user)
    assert feedback.offer(ClassAnswer.objects.get(), answer.user).status == "pending"
    settings.REPLY_STALE_SECONDS = 0.000001
    # The card offers the button again instead of waiting forever.
    assert feedback.offer(ClassAnswer.objects.get(), answer.user).status == "failed"
    again = feedback.request(answer_id=answer.pk, user=answer.user)
    assert again.usage_id is not None and again.usage_id != asked.usage_id
    old = AIUsage.objects.get(pk=asked.usage_id)
    assert (old.outcome, old.refunded) == ("failed", True)
    assert quota.remaining(answer.user) == 1


@pytest.mark.django_db(transaction=True)
def test_two_tabs_asking_at_the_same_moment_charge_once(answer: ClassAnswer) -> None:
    start = threading.Barrier(2)
    charged: list[bool] = []
    errors: list[BaseException] = []

    def contender() -> None:
        try:
            start.wait(timeout=5)
            charged.append(
                feedback.request(answer_id=answer.pk, user=answer.user).usage_id is not None
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=contender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not errors, errors
    assert sorted(charged) == [False, True]
    assert AIUsage.objects.filter(user=answer.user).count() == 1


POSTGRES_RACE = """
from accounts.models import User
from chat.classes import feedback, services as classes
from chat.coach import quota
from chat.models import AIUsage
coach = User.objects.create_user(email="coach@example.com", password="x", role="coach")
learner = User.objects.create_user(email="racer@example.com", password="x")
klass = classes.class_create(coach=coach, title="C", questions="Why us?")
session = classes.session_start(klass=klass, by=coach)
classes.session_join(session=session, user=learner)
classes.session_move(session_id=session.pk, by=coach, move="next")
answer = classes.answer_submit(session_id=session.pk, user=learner, step=1, text="I fixed it.")
record = quota.record

def slow_record(*args, **kwargs):
    # Widen the window between "not asked yet" and "charged": without the lock both
    # tabs would read the answer as not asked and both would be charged.
    time.sleep(0.1)
    return record(*args, **kwargs)

quota.record = slow_record
start = threading.Barrier(2)
charged, errors = [], []

def contender():
    try:
        start.wait(timeout=5)
        charged.append(feedback.request(answer_id=answer.pk, user=learner).usage_id is not None)
    except BaseException as exc:
        errors.append(repr(exc))
    finally:
        connections.close_all()

threads = [threading.Thread(target=contender) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=20)
rows = AIUsage.objects.filter(user=learner).count()
print(json.dumps({
    "vendor": connection.vendor, "charged": sorted(charged), "rows": rows, "errors": errors,
}))
"""


def test_two_tabs_asking_on_postgresql_charge_once(tmp_path: Any) -> None:
    report = run_on_postgres(
        POSTGRES_RACE,
        tmp_path,
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        OPENAI_API_KEY="x",
        ACTIVITY_REDIS_URL="",
    )
    assert report == {"vendor": "postgresql", "charged": [False, True], "rows": 1, "errors": []}


@pytest.mark.django_db
def test_a_page_opening_on_an_orphaned_ask_refunds_it(answer: ClassAnswer, settings: Any) -> None:
    asked = feedback.request(answer_id=answer.pk, user=answer.user)
    assert feedback.recover(ClassAnswer.objects.get()).ai_status == "pending"  # still fresh
    settings.REPLY_STALE_SECONDS = 0.000001
    recovered = feedback.recover(ClassAnswer.objects.get())
    assert recovered is not None and recovered.ai_status == "failed"
    assert AIUsage.objects.get(pk=asked.usage_id).refunded
    assert quota.remaining(answer.user) == 2
