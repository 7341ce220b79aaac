"""What a live class page may send on its socket, and its work on resync, heartbeat and close.

Every handler checks the actor's role in the service it calls, with the page's signed-in
user: a frame names no one (a `user` field in it is ignored), so nobody answers or raises
a hand as someone else, and only the session's coach moves the session or resolves hands.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from chat import events
from chat.actions import Page, action, on_page
from chat.classes import attendance, dashboard, feedback, frames, machine, selectors, services
from chat.coach.sending import clean_speech_seconds
from chat.dbasync import db_async
from chat.models import ClassSession, Conversation

CLASS = [Conversation.Kind.CLASS]
MOVES = {
    "next": "next",
    "prev": "prev",
    "pause": "pause",
    "resume": "resume",
    "end": "end",
}


async def _session(page: Page) -> ClassSession | None:
    session: ClassSession | None = page.state.get("class_session")
    if session is None:
        session = await db_async(selectors.session_of_conversation)(page.conversation.pk)
        page.state["class_session"] = session
    return session


def _is_coach(page: Page, session: ClassSession) -> bool:
    return bool(session.klass.coach_id == page.user.pk)


async def _move(page: Page, move: str) -> None:
    session = await _session(page)
    if session is None:
        return
    try:
        before = await db_async(ClassSession.objects.get)(pk=session.pk)
        after = await db_async(services.session_move)(
            session_id=session.pk, by=page.user, move=move
        )
    except services.NotAllowedError:
        await page.send_notice(_("Only the coach of this session can do that."))
        return
    except machine.InvalidMoveError:
        await page.send_notice(_("That is not possible right now."))
        return
    if after.current_step != before.current_step or move == "end":
        await dashboard.note_all(after)


def _register_move(name: str, move: str) -> None:
    async def handler(page: Page, payload: dict[str, Any]) -> None:
        await _move(page, move)

    handler.__name__ = f"on_{name}"
    handler.__doc__ = f"The coach's '{move}' button."
    action(name, kinds=CLASS)(handler)


for _name, _move_name in MOVES.items():
    _register_move(_name, _move_name)


@action("answer", kinds=CLASS)
async def on_answer(page: Page, payload: dict[str, Any]) -> None:
    """A learner answers the question their page shows."""
    session = await _session(page)
    if session is None:
        return
    text = payload.get("answer")
    if not isinstance(text, str) or not text.strip():
        await page.send_notice(_("Write an answer first."))
        return
    try:
        answer = await db_async(services.answer_submit)(
            session_id=session.pk,
            user=page.user,
            step=payload.get("step"),
            text=text,
            # A dictated answer's speaking time, for its pace (as in practice).
            duration_seconds=clean_speech_seconds(payload.get("speech_seconds")),
        )
    except services.NotAllowedError:
        await page.send_notice(_("Only learners of this session can answer."))
        return
    except services.SessionClosedError:
        await page.send_notice(_("This session is not taking answers now."))
        return
    current = await db_async(ClassSession.objects.get)(pk=session.pk)
    if answer.step == current.current_step:
        html = await db_async(frames.learner_answer)(current, answer, page.user)
        await events.publish(events.user_group(page.user.pk), events.frame(html))
    else:
        await page.send_notice(_("Your answer to the previous question was saved."), level="info")
    await dashboard.note(session, page.user.pk)


@action("ai_feedback", kinds=CLASS)
async def on_ai_feedback(page: Page, payload: dict[str, Any]) -> None:
    """A learner asks for AI feedback on their own answer (one unit of their own quota)."""
    session = await _session(page)
    if session is None:
        return
    try:
        asked = await db_async(feedback.request)(answer_id=payload.get("answer_id"), user=page.user)
    except feedback.NotAllowedError:
        await page.send_notice(_("You can ask for AI feedback on your own answers only."))
        return
    except feedback.OfflineError:
        await page.send_notice(
            _("AI feedback needs a model server: this site runs the offline coach.")
        )
        return
    except feedback.QuotaExhaustedError:
        await page.send_notice(
            _("No AI replies left today: your answer keeps the coach's feedback.")
        )
        return
    await _publish_answer(session, asked.answer, page.user)
    if asked.usage_id is None:
        return  # pending or complete already: nothing charged twice
    await feedback.publish_quota(page.user.pk)
    user = page.user

    async def done(answer: Any, refunded: bool) -> None:
        if answer is not None:
            await _publish_answer(session, answer, user)
        if refunded:
            await feedback.publish_quota(user.pk)

    feedback.start(asked.answer.pk, asked.usage_id, then=done)


async def _publish_answer(session: ClassSession, answer: Any, user: Any) -> None:
    """The AI part of a learner's answer card on their pages, and their dashboard row.

    Only that part: the learner may be editing the answer meanwhile. A page on another
    question has no such card; the report shows it after the session.
    """
    html = await db_async(frames.answer_ai)(answer, user)
    await events.publish_safely(events.user_group(user.pk), events.frame(html))
    await dashboard.note(session, user.pk)


@action("raise_hand", kinds=CLASS)
async def on_raise_hand(page: Page, payload: dict[str, Any]) -> None:
    """A learner asks for help; the coach's dashboard shows it at once."""
    session = await _session(page)
    if session is None:
        return
    note = payload.get("note")
    try:
        hand = await db_async(services.hand_raise)(
            session_id=session.pk, user=page.user, note=note if isinstance(note, str) else ""
        )
    except services.NotAllowedError:
        await page.send_notice(_("Only learners of this session can raise a hand."))
        return
    except services.SessionClosedError:
        await page.send_notice(_("This session has ended."))
        return
    mine = await db_async(frames.hand_box)(session, hand)
    await events.publish(events.user_group(page.user.pk), events.frame(mine))
    # Not batched: a hand must reach the coach at once.
    html = await db_async(frames.hand_raised)(hand, page.user)
    await events.publish(events.user_group(session.klass.coach_id), events.frame(html))
    await dashboard.note(session, page.user.pk)


@action("lower_hand", kinds=CLASS)
async def on_lower_hand(page: Page, payload: dict[str, Any]) -> None:
    """A learner lowers their own hand (only ever their own: the frame names no one)."""
    session = await _session(page)
    if session is None:
        return
    try:
        hand = await db_async(services.hand_lower)(session_id=session.pk, user=page.user)
    except services.NotAllowedError:
        await page.send_notice(_("Only learners of this session can lower a hand."))
        return
    mine = await db_async(frames.hand_box)(session, None)
    await events.publish(events.user_group(page.user.pk), events.frame(mine))
    if hand is not None:
        await events.publish(
            events.user_group(session.klass.coach_id), events.frame(frames.hand_gone(hand.pk))
        )
        await dashboard.note(session, page.user.pk)


@action("resolve_hand", kinds=CLASS)
async def on_resolve_hand(page: Page, payload: dict[str, Any]) -> None:
    """The coach resolves a hand; the learner sees it resolved."""
    session = await _session(page)
    if session is None:
        return
    try:
        hand = await db_async(services.hand_resolve)(
            session_id=session.pk, by=page.user, hand_id=payload.get("hand")
        )
    except services.NotAllowedError:
        await page.send_notice(_("Only the coach of this session can do that."))
        return
    if hand is None:
        return
    await events.publish(
        events.user_group(session.klass.coach_id), events.frame(frames.hand_gone(hand.pk))
    )
    theirs = await db_async(frames.hand_box)(session, None, resolved=True)
    await events.publish(events.user_group(hand.user_id), events.frame(theirs))
    await dashboard.note(session, hand.user_id)


# --- the page's life ------------------------------------------------------------------------------


def _resync_frames(session_id: Any, user_id: int, is_coach: bool) -> tuple[ClassSession, str]:
    session = ClassSession.objects.select_related("klass").get(pk=session_id)
    parts = [frames.stage(session)]
    if is_coach:
        parts += [
            frames.coach_controls(session),
            frames.dashboard_body(session),
            frames.counts(session),
        ]
    else:
        from accounts.models import User

        user = User.objects.get(pk=user_id)
        parts.append(
            frames.learner_answer(
                session,
                feedback.recover(selectors.answer_of(session, user, session.current_step)),
                user,
            )
        )
        parts.append(frames.hand_box(session, selectors.raised_hand(session, user)))
    return session, "\n".join(parts)


@on_page("resync", kinds=CLASS)
async def class_resync(page: Page) -> None:
    """A page (re)connected: it lands on the current question, with nothing missed."""
    session = await _session(page)
    if session is None:
        return
    coach = _is_coach(page, session)
    session, html = await db_async(_resync_frames)(session.pk, page.user.pk, coach)
    page.state["class_session"] = session
    await page.send_frame(html)
    if not coach and not page.state.get("class_open"):
        opened = await db_async(attendance.page_opened)(session_id=session.pk, user=page.user)
        if opened:
            page.state["class_open"] = True
            await dashboard.note(session, page.user.pk)


@on_page("heartbeat", kinds=CLASS)
async def class_heartbeat(page: Page) -> None:
    """Learners: still here. The coach's page sweeps out learners who missed their beats."""
    session = await _session(page)
    if session is None:
        return
    if _is_coach(page, session):
        gone = await db_async(attendance.sweep_gone)(session_id=session.pk)
        for user_id in gone:
            await dashboard.note(session, user_id)
    elif page.state.get("class_open"):
        back = await db_async(attendance.heartbeat)(session_id=session.pk, user=page.user)
        if back:
            await dashboard.note(session, page.user.pk)


@on_page("close", kinds=CLASS)
async def class_close(page: Page) -> None:
    """A learner's page closed: offline on the dashboard once their last page is gone."""
    session = page.state.get("class_session")
    if session is None or not page.state.pop("class_open", False):
        return
    await db_async(attendance.page_closed)(session_id=session.pk, user=page.user)
    await dashboard.note(session, page.user.pk)
