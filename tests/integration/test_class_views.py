"""Class pages through the Django test client: create, start, join by code, reports, CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.core.cache import cache
from django.urls import reverse

from chat.classes import activity
from chat.classes import services as classes
from chat.models import Class, ClassSession

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def direct_activity(settings: Any) -> None:
    settings.ACTIVITY_REDIS_URL = ""
    activity.reset_client()
    cache.clear()


@pytest.fixture
def coach(make_user: Any) -> Any:
    return make_user(nickname="Coach Park", role="coach")


@pytest.fixture
def learner(make_user: Any) -> Any:
    return make_user(nickname="Minji")


@pytest.fixture
def session(coach: Any) -> ClassSession:
    klass = classes.class_create(coach=coach, title="Interviews", questions="One?\nTwo?\nThree?")
    return classes.session_start(klass=klass, by=coach)


def test_a_coach_creates_a_class_from_typed_questions(client: Any, coach: Any) -> None:
    client.force_login(coach)
    page = client.get(reverse("class-list")).content.decode()
    assert 'data-testid="create-class"' in page and 'data-testid="nav-classes"' in page
    response = client.post(
        reverse("class-create"), {"title": "Mock interviews", "questions": "Q1?\n\nQ2?\n"}
    )
    klass = Class.objects.get()
    assert response.status_code == 302 and klass.question_list == ["Q1?", "Q2?"]
    assert 'data-testid="class-item"' in client.get(reverse("class-list")).content.decode()


def test_a_class_can_take_a_coachs_question_bank(client: Any, coach: Any, persona: Any) -> None:
    client.force_login(coach)
    client.post(reverse("class-create"), {"title": "Bank", "questions": "", "persona": persona.pk})
    assert Class.objects.get().question_list == persona.question_bank


def test_learners_cannot_create_classes_nor_see_the_form(client: Any, learner: Any) -> None:
    client.force_login(learner)
    assert 'data-testid="create-class"' not in client.get(reverse("class-list")).content.decode()
    assert client.post(reverse("class-create"), {"title": "x", "questions": "q"}).status_code == 404
    assert 'data-testid="nav-classes"' not in client.get(reverse("home")).content.decode()


def test_starting_a_session_shows_the_code_the_qr_and_the_join_url(client: Any, coach: Any) -> None:
    client.force_login(coach)
    klass = classes.class_create(coach=coach, title="T", questions="Q?")
    response = client.post(reverse("class-session-start", args=[klass.pk]))
    session = ClassSession.objects.get()
    assert response.url == reverse("class-session", args=[session.pk])
    page = client.get(response.url).content.decode()
    assert f'data-testid="join-code">{session.join_code}<' in page
    assert '<div class="join-qr" data-testid="join-qr"><svg' in page
    assert f"/join/{session.join_code}/" in page
    assert 'data-state="waiting"' in page and 'data-testid="next-step"' in page


def test_joining_needs_signing_in_and_comes_back_to_the_join_url(
    client: Any, session: ClassSession
) -> None:
    url = reverse("class-join-code", args=[session.join_code])
    response = client.get(url)
    assert (
        response.status_code == 302
        and "next=" in response.url
        and session.join_code in response.url
    )


def test_a_code_typed_in_lower_case_with_spaces_joins(
    client: Any, learner: Any, session: ClassSession
) -> None:
    client.force_login(learner)
    typed = " ".join(session.join_code.lower()[i : i + 3] for i in (0, 3))
    response = client.post(reverse("class-join"), {"code": f" {typed} "})
    assert response.status_code == 302 and response.url == reverse(
        "class-session", args=[session.pk]
    )
    page = client.get(response.url).content.decode()
    assert 'data-testid="raise-hand"' in page and 'data-testid="class-answer"' in page
    assert 'data-testid="next-step"' not in page
    assert session.klass.learners.filter(pk=learner.pk).exists()


def test_a_wrong_or_ended_code_gets_a_clear_message(
    client: Any, learner: Any, coach: Any, session: ClassSession
) -> None:
    client.force_login(learner)
    response = client.post(reverse("class-join"), {"code": "ZZZZZZ"})
    assert (
        response.status_code == 404 and "No live session has this code" in response.content.decode()
    )
    classes.session_move(session_id=session.pk, by=coach, move="end")
    response = client.post(reverse("class-join"), {"code": session.join_code})
    assert response.status_code == 404


def test_guessing_codes_is_rate_limited(
    client: Any, learner: Any, session: ClassSession, settings: Any
) -> None:
    settings.JOIN_CODE_ATTEMPTS = 3
    client.force_login(learner)
    for _ in range(3):
        assert client.post(reverse("class-join"), {"code": "ZZZZZZ"}).status_code == 404
    response = client.post(reverse("class-join"), {"code": session.join_code})
    assert response.status_code == 429 and "Too many wrong codes" in response.content.decode()


def test_a_stranger_cannot_open_a_session_page_or_its_report(
    client: Any, make_user: Any, session: ClassSession
) -> None:
    client.force_login(make_user())
    assert client.get(reverse("class-session", args=[session.pk])).status_code == 404
    assert client.get(reverse("class-session-report", args=[session.pk])).status_code == 404
    assert client.get(reverse("class-session-activity-csv", args=[session.pk])).status_code == 404


def test_the_learners_home_page_lists_their_classes(
    client: Any, learner: Any, session: ClassSession
) -> None:
    classes.session_join(session=session, user=learner)
    client.force_login(learner)
    page = client.get(reverse("home")).content.decode()
    assert 'data-testid="my-classes"' in page and "Interviews" in page


@pytest.mark.django_db(transaction=True)
def test_after_the_session_the_reports_and_the_csv(
    client: Any, coach: Any, learner: Any, session: ClassSession
) -> None:
    classes.session_join(session=session, user=learner)
    classes.session_move(session_id=session.pk, by=coach, move="next")
    classes.answer_submit(
        session_id=session.pk, user=learner, step=1, text="I led the project and we shipped."
    )
    hand = classes.hand_raise(session_id=session.pk, user=learner, note="Help")
    classes.hand_resolve(session_id=session.pk, by=coach, hand_id=hand.pk)
    classes.session_move(session_id=session.pk, by=coach, move="end")
    activity.flush()
    client.force_login(coach)
    klass_page = client.get(reverse("class-detail", args=[session.klass_id])).content.decode()
    assert 'data-testid="report-link"' in klass_page and 'data-testid="activity-csv"' in klass_page
    report = client.get(reverse("class-session-report", args=[session.pk])).content.decode()
    assert 'data-testid="session-report"' in report and "I led the project" in report
    assert "1 joined, 1 answered" in report and 'data-testid="mean-wait"' in report
    response = client.get(reverse("class-session-activity-csv", args=[session.pk]))
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["at", "event", "learner"]
    assert [r[1] for r in rows[1:]] == [
        "join", "start", "step", "answer", "hand_raised", "hand_resolved", "end"
    ]  # fmt: skip
    client.force_login(learner)
    mine = client.get(reverse("class-session-report", args=[session.pk])).content.decode()
    assert "I led the project" in mine and 'data-testid="report-feedback"' in mine
    assert client.get(reverse("class-session-activity-csv", args=[session.pk])).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_report_and_the_csv_have_events_the_flusher_has_not_stored_yet(
    client: Any, coach: Any, learner: Any, session: ClassSession, monkeypatch: Any
) -> None:
    # A flusher that has fallen behind (here: one that never runs), as a coach opens the
    # log the moment the session ends.
    idle = activity.DirectBuffer()
    monkeypatch.setattr(idle, "_run", lambda: None)
    monkeypatch.setattr(activity, "buffer", idle)
    client.force_login(coach)

    def run(one: ClassSession) -> None:
        classes.session_join(session=one, user=learner)
        for move in ("next", "pause", "resume", "end"):
            classes.session_move(session_id=one.pk, by=coach, move=move)
        assert idle.pending() == 6

    run(session)
    response = client.get(reverse("class-session-activity-csv", args=[session.pk]))
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert [r[1] for r in rows[1:]] == ["join", "start", "step", "pause", "resume", "end"]
    assert idle.pending() == 0

    second = classes.session_start(klass=session.klass, by=coach)
    run(second)
    report = client.get(reverse("class-session-report", args=[second.pk]))
    assert report.status_code == 200 and idle.pending() == 0
    assert second.activity.count() == 6


def test_health_reports_the_activity_path(client: Any) -> None:
    body = client.get("/health/detailed/").json()
    assert body["services"]["activity_log"]["path"] == "direct"


@pytest.mark.django_db(transaction=True)
def test_seed_demo_adds_a_coach_with_a_finished_session_and_its_report(client: Any) -> None:
    from django.core.management import call_command

    from accounts.models import User

    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())  # safe twice
    session = ClassSession.objects.get()
    assert session.state == "ended" and session.answers.count() == 5
    coach = User.objects.get(email="coach@example.com")
    assert coach.role == "coach" and session.klass.coach == coach
    client.force_login(coach)
    report = client.get(reverse("class-session-report", args=[session.pk])).content.decode()
    assert "2 joined, 2 answered" in report and "checkout page was slow" in report


def test_an_invited_learner_opens_the_live_session_from_the_class_page(
    client: Any, learner: Any, session: ClassSession
) -> None:
    client.force_login(learner)
    invite = reverse("class-invite", args=[session.klass.invite_code])
    assert client.post(invite).url == reverse("class-detail", args=[session.klass_id])
    page = client.get(reverse("class-detail", args=[session.klass_id])).content.decode()
    assert reverse("class-session", args=[session.pk]) in page
    assert client.get(reverse("class-session", args=[session.pk])).status_code == 200
    assert session.attendances.filter(user=learner).exists()
    assert session.conversation.memberships.filter(user=learner).exists()


def test_a_coach_enrols_an_organisation(client: Any, coach: Any, make_user: Any) -> None:
    klass = classes.class_create(coach=coach, title="Org", questions="Q?")
    for organisation in ("Hanbit Univ", "HANBIT UNIV", ""):
        make_user(organisation=organisation)
    client.force_login(coach)
    client.post(reverse("class-enrol", args=[klass.pk]), {"organisation": "Hanbit Univ"})
    assert klass.learners.count() == 2


def test_both_reports_show_the_ai_feedback_a_learner_asked_for_escaped(
    client: Any, coach: Any, learner: Any, session: ClassSession, settings: Any
) -> None:
    from django.db import transaction

    from chat.classes import feedback
    from chat.coach import quota
    from tests.fakes.fake_openai import GOOD_RUBRIC

    classes.session_join(session=session, user=learner)
    classes.session_move(session_id=session.pk, by=coach, move="next")
    answer = classes.answer_submit(
        session_id=session.pk, user=learner, step=1, text="I led the project and we shipped."
    )
    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = "http://127.0.0.1:9/v1", "x"
    asked = feedback.request(answer_id=answer.pk, user=learner)
    assert asked.usage_id is not None
    hostile = {**GOOD_RUBRIC, "strength": '<img src=x onerror="alert(1)"> Clear start.'}
    feedback.complete(
        answer_id=answer.pk, usage_id=asked.usage_id, result=hostile, model="m", metadata={}
    )
    classes.session_move(session_id=session.pk, by=coach, move="end")
    with transaction.atomic():
        assert quota.lock(learner) == settings.AI_DAILY_LIMIT - 1
    for who in (coach, learner):
        client.force_login(who)
        report = client.get(reverse("class-session-report", args=[session.pk])).content.decode()
        assert 'data-testid="report-ai-feedback"' in report and 'data-testid="rubric"' in report
        assert GOOD_RUBRIC["specificity"]["reason"] in report
        assert "&lt;img src=x" in report and "<img src=x" not in report
