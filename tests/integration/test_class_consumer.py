"""The live class socket: every move and permission, late joiners, hands, answers, the log."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from chat.classes import activity, dashboard
from chat.classes import services as classes
from chat.models import ActivityEvent, Attendance, ClassAnswer, ClassSession, Hand
from chat.routing import websocket_urlpatterns
from tests.integration.classroom import *  # noqa: F403  (the class fixtures)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

application = URLRouter(websocket_urlpatterns)


class Page:
    """One open class page, speaking the htmx ws extension's JSON."""

    def __init__(self, user: Any, session: ClassSession) -> None:
        self.comm = WebsocketCommunicator(application, f"/ws/chat/{session.conversation_id}/")
        self.comm.scope["user"] = user

    async def open(self) -> Page:
        connected, _ = await self.comm.connect()
        assert connected
        await self.send(action="resync", last_seq=0)
        await self.until("class-stage")
        return self

    async def send(self, **payload: Any) -> None:
        await self.comm.send_json_to({**payload, "HEADERS": {"HX-Request": "true"}})

    async def until(self, needle: str, timeout: float = 3) -> str:
        deadline = time.monotonic() + timeout
        while True:
            html = await self.comm.receive_from(max(0.05, deadline - time.monotonic()))
            if needle in html:
                return html

    async def quiet(self, timeout: float = 0.3) -> bool:
        return await self.comm.receive_nothing(timeout)

    async def closed_with(self, timeout: float = 3) -> int:
        while True:
            output = await self.comm.receive_output(timeout)
            if output["type"] == "websocket.close":
                return output["code"]

    async def close(self) -> None:
        await self.comm.disconnect()


def state_of(html: str) -> str:
    match = re.search(r'data-testid="session-state" data-state="(\w+)"', html)
    assert match, html
    return match.group(1)


async def fresh(session: ClassSession) -> ClassSession:
    return await database_sync_to_async(ClassSession.objects.get)(pk=session.pk)


async def test_coach_starts_and_every_learner_follows_each_move(
    coach: Any, minji: Any, joon: Any, session: ClassSession
) -> None:
    teacher = await Page(coach, session).open()
    a, b = await Page(minji, session).open(), await Page(joon, session).open()
    await teacher.send(action="next")
    for page in (a, b, teacher):
        html = await page.until("session-state")
        assert state_of(html) == "running"
        assert "Question 1 of 3" in html and "Tell me about yourself." in html
    for move, expected in [("next", "Question 2 of 3"), ("prev", "Question 1 of 3"),
                           ("pause", 'data-state="paused"'), ("resume", 'data-state="running"'),
                           ("end", 'data-state="ended"')]:  # fmt: skip
        await teacher.send(action=move)
        for page in (a, b, teacher):
            assert expected in await page.until("session-state")
    s = await fresh(session)
    assert (s.state, s.current_step) == ("ended", 1)
    assert s.started_at and s.ended_at
    for page in (teacher, a, b):
        await page.close()


async def test_only_the_coach_moves_the_session(
    coach: Any, minji: Any, session: ClassSession
) -> None:
    learner = await Page(minji, session).open()
    for move in ("next", "prev", "pause", "resume", "end"):
        await learner.send(action=move)
        assert "Only the coach" in await learner.until("notice")
    assert (await fresh(session)).state == "waiting"
    await learner.close()


async def test_a_move_the_state_refuses_gets_a_notice(coach: Any, session: ClassSession) -> None:
    teacher = await Page(coach, session).open()
    await teacher.send(action="resume")
    assert "not possible" in await teacher.until("notice")
    await teacher.send(action="prev")
    assert "not possible" in await teacher.until("notice")
    await teacher.close()


async def test_a_learner_of_another_class_is_refused_as_if_no_session_existed(
    coach: Any, make_user: Any, session: ClassSession
) -> None:
    other_coach = await database_sync_to_async(make_user)(role="coach")
    other = await database_sync_to_async(classes.class_create)(
        coach=other_coach, title="Other", questions="Q?"
    )
    other_session = await database_sync_to_async(classes.session_start)(klass=other, by=other_coach)
    stranger = await database_sync_to_async(make_user)(nickname="Stranger")
    await database_sync_to_async(classes.session_join)(session=other_session, user=stranger)
    page = Page(stranger, session)
    connected, _ = await page.comm.connect()
    assert connected
    assert await page.closed_with() == 4404
    await page.comm.disconnect()


async def test_a_late_joiner_lands_on_the_current_question(
    coach: Any, make_user: Any, session: ClassSession
) -> None:
    teacher = await Page(coach, session).open()
    await teacher.send(action="next")
    await teacher.until("session-state")
    await teacher.send(action="next")
    await teacher.until("Question 2")
    late = await database_sync_to_async(make_user)(nickname="Late")
    await database_sync_to_async(classes.session_join)(session=session, user=late)
    page = Page(late, session)
    await page.comm.connect()
    await page.send(action="resync", last_seq=0)
    html = await page.until("class-stage")
    assert "Question 2 of 3" in html and "A time you failed?" in html
    assert 'name="step" value="2"' in html
    await page.close()
    await teacher.close()


async def test_answers_are_the_learners_own_and_reach_the_dashboard(
    coach: Any, minji: Any, joon: Any, session: ClassSession
) -> None:
    teacher = await Page(coach, session).open()
    a = await Page(minji, session).open()
    await teacher.send(action="next")
    await a.until("session-state")
    # A `user` field naming someone else is ignored: the page's signed-in user answers.
    await a.send(action="answer", step=1, answer="I led a team of four.", user=joon.pk)
    assert "answer-saved" in await a.until("learner-answer")
    row = await teacher.until('data-answered="true"')
    assert f'id="learner-{minji.pk}"' in row and "I led a team of four." in row
    answers = await database_sync_to_async(list)(ClassAnswer.objects.values("user_id", "step"))
    assert answers == [{"user_id": minji.pk, "step": 1}]
    saved = await database_sync_to_async(ClassAnswer.objects.get)(user=minji)
    assert "words" in saved.analysis and saved.analysis["feedback"]
    await a.close()
    await teacher.close()


async def test_the_coach_cannot_answer_and_an_answer_needs_a_running_session(
    coach: Any, minji: Any, session: ClassSession
) -> None:
    teacher = await Page(coach, session).open()
    a = await Page(minji, session).open()
    await a.send(action="answer", step=1, answer="Too early")
    assert "not taking answers" in await a.until("notice")
    await teacher.send(action="next")
    await teacher.until("session-state")
    await teacher.send(action="answer", step=1, answer="Coach's own")
    assert "Only learners" in await teacher.until("notice")
    assert not await database_sync_to_async(ClassAnswer.objects.exists)()
    await a.close()
    await teacher.close()


async def test_a_hand_reaches_the_coach_at_once_and_the_learner_sees_it_resolved(
    coach: Any, minji: Any, session: ClassSession
) -> None:
    teacher = await Page(coach, session).open()
    a = await Page(minji, session).open()
    await a.send(action="raise_hand", note="Stuck on STAR")
    assert "lower-hand" in await a.until("hand-box")
    html = await teacher.until("hand-item")
    assert "Stuck on STAR" in html and 'role="alert"' in html
    hand = await database_sync_to_async(Hand.objects.get)(user=minji)
    # Learners cannot resolve hands, not even their own.
    await a.send(action="resolve_hand", hand=hand.pk)
    assert "Only the coach" in await a.until("notice")
    await teacher.send(action="resolve_hand", hand=hand.pk)
    assert f'id="hand-{hand.pk}" hx-swap-oob="delete"' in await teacher.until("delete")
    assert 'data-state="resolved"' in await a.until("hand-box")
    hand = await database_sync_to_async(Hand.objects.get)(pk=hand.pk)
    assert hand.state == "resolved" and hand.wait_seconds is not None
    await a.close()
    await teacher.close()


async def test_a_learner_lowers_only_their_own_hand(
    coach: Any, minji: Any, joon: Any, session: ClassSession
) -> None:
    a, b = await Page(minji, session).open(), await Page(joon, session).open()
    await a.send(action="raise_hand", note="")
    await a.until("lower-hand")
    # Joon's "lower" names Minji's hand and user: it lowers nothing of hers.
    minji_hand = await database_sync_to_async(Hand.objects.get)(user=minji)
    await b.send(action="lower_hand", hand=minji_hand.pk, user=minji.pk)
    await b.until("hand-box")
    assert (await database_sync_to_async(Hand.objects.get)(pk=minji_hand.pk)).state == "raised"
    await a.send(action="lower_hand")
    assert "raise-hand" in await a.until("hand-box")
    assert (await database_sync_to_async(Hand.objects.get)(pk=minji_hand.pk)).state == "lowered"
    await a.close()
    await b.close()


async def test_the_dashboard_shows_who_is_online(
    coach: Any, minji: Any, session: ClassSession
) -> None:
    teacher = await Page(coach, session).open()
    a = await Page(minji, session).open()
    assert 'data-online="true"' in await teacher.until(f'id="learner-{minji.pk}"')
    await a.close()
    assert 'data-online="false"' in await teacher.until(f'id="learner-{minji.pk}"')
    att = await database_sync_to_async(Attendance.objects.get)(user=minji)
    assert not att.online and att.connections == 0
    await teacher.close()


async def test_a_scripted_session_logs_every_event_exactly_once(
    coach: Any, minji: Any, joon: Any, session: ClassSession
) -> None:
    teacher = await Page(coach, session).open()
    a, b = await Page(minji, session).open(), await Page(joon, session).open()
    await teacher.send(action="next")
    await a.until("session-state")
    await a.send(action="answer", step=1, answer="Answer one")
    await a.until("learner-answer")
    await b.send(action="raise_hand", note="help")
    await b.until("lower-hand")
    hand = await database_sync_to_async(Hand.objects.get)(user=joon)
    await teacher.send(action="resolve_hand", hand=hand.pk)
    await b.until("hand-box")
    await teacher.send(action="next")
    await a.until("Question 2")
    await teacher.send(action="pause")
    await a.until("paused")
    await teacher.send(action="resume")
    await a.until("running")
    await b.close()
    await teacher.send(action="end")
    await a.until("ended")
    await a.close()
    await teacher.close()
    await dashboard.flush_now()
    await database_sync_to_async(activity.flush)()
    kinds = await database_sync_to_async(list)(
        ActivityEvent.objects.filter(session=session)
        .order_by("at", "id")
        .values_list("kind", flat=True)
    )
    assert sorted(kinds) == sorted(
        ["join", "join", "start", "step", "answer", "hand_raised", "hand_resolved", "step",
         "pause", "resume", "leave", "end", "leave"]
    )  # fmt: skip
    ids = await database_sync_to_async(list)(
        ActivityEvent.objects.values_list("event_id", flat=True)
    )
    assert len(ids) == len(set(ids))


async def test_a_learner_whose_heartbeats_stop_goes_offline_on_the_dashboard(
    coach: Any, minji: Any, session: ClassSession
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    teacher = await Page(coach, session).open()
    a = await Page(minji, session).open()
    await teacher.until('data-online="true"')
    # Her phone went to sleep without closing the socket: no beat for longer than the timeout.
    await database_sync_to_async(Attendance.objects.filter(user=minji).update)(
        last_seen=timezone.now() - timedelta(minutes=5)
    )
    await teacher.send(action="heartbeat")
    assert 'data-online="false"' in await teacher.until(f'id="learner-{minji.pk}"')
    await dashboard.flush_now()
    await database_sync_to_async(activity.flush)()
    leave = await database_sync_to_async(ActivityEvent.objects.get)(kind="leave")
    assert leave.data == {"missed_heartbeats": True}
    # Her next beat brings her back.
    await a.send(action="heartbeat")
    assert 'data-online="true"' in await teacher.until('data-online="true"')
    await a.close()
    await teacher.close()
