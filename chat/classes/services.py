"""Writes of live classes: classes, sessions, the state machine, answers, hands, attendance.

Each write is atomic, logs its activity event through `activity.record` and publishes its
frames only after commit (`events.publish_on_commit`). Who may do what is checked here,
from the signed-in user the caller passes — never from anything a page sent.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from chat import events
from chat.classes import activity, dashboard, feedback, frames, machine
from chat.coach.analysis import analyse
from chat.coach.coaching import offline_feedback
from chat.models import (
    Attendance,
    Class,
    ClassAnswer,
    ClassSession,
    Conversation,
    Hand,
    Membership,
    Persona,
)

MAX_ANSWER_LENGTH = 4000
MAX_NOTE_LENGTH = 200


class NotAllowedError(Exception):
    """The person may not do this (not the session's coach, or not one of its learners)."""


class SessionClosedError(Exception):
    """The session has ended (or not started) and does not take this any more."""


def can_coach(user: User) -> bool:
    """Whether the person may create and run classes (a coach, or staff)."""
    return bool(user.is_authenticated and (user.role == User.Role.COACH or user.is_staff))


# --- classes ------------------------------------------------------------------------------------


@transaction.atomic
def class_create(
    *,
    coach: User,
    title: str,
    questions: str,
    description: str = "",
    seconds_per_question: int | None = None,
    persona: Persona | None = None,
) -> Class:
    """A new class of `coach`'s (questions typed in, or the persona's bank when left empty)."""
    if not can_coach(coach):
        raise NotAllowedError
    if not questions.strip() and persona is not None:
        questions = "\n".join(persona.question_bank)
    return Class.objects.create(
        coach=coach,
        title=title,
        description=description,
        questions=questions.strip(),
        seconds_per_question=seconds_per_question,
        persona=persona,
    )


@transaction.atomic
def enrol(*, klass: Class, user: User) -> None:
    """Put a learner in a class (idempotent; the coach is never a learner of their own)."""
    if user.pk != klass.coach_id:
        klass.learners.add(user)


@transaction.atomic
def enrol_organisation(*, klass: Class, organisation: str) -> int:
    """Enrol everyone of an organisation or department; returns how many were added."""
    people = User.objects.filter(organisation__iexact=organisation.strip(), is_active=True)
    before = klass.learners.count()
    klass.learners.add(*people.exclude(pk=klass.coach_id))
    return klass.learners.count() - before


# --- sessions -----------------------------------------------------------------------------------


@transaction.atomic
def session_start(*, klass: Class, by: User) -> ClassSession:
    """Open a live session of the class in `waiting`, with a fresh join code."""
    if by.pk != klass.coach_id:
        raise NotAllowedError
    conversation = Conversation.objects.create(
        kind=Conversation.Kind.CLASS, title=klass.title, owner=by, is_public=False
    )
    Membership.objects.create(conversation=conversation, user=by, role=Membership.Role.OWNER)
    for _attempt in range(10):
        try:
            with transaction.atomic():
                return ClassSession.objects.create(
                    klass=klass,
                    conversation=conversation,
                    questions=klass.question_list,
                    seconds_per_question=klass.seconds_per_question,
                )
        except IntegrityError:
            continue  # the join code was taken: draw another
    raise IntegrityError("no free join code")


@transaction.atomic
def session_join(*, session: ClassSession, user: User) -> Attendance | None:
    """A learner joins (by code or from their class page); None for the coach themselves."""
    if session.state == ClassSession.State.ENDED:
        raise SessionClosedError
    Membership.objects.get_or_create(conversation_id=session.conversation_id, user=user)
    if user.pk == session.klass.coach_id:
        return None
    session.klass.learners.add(user)
    attendance, created = Attendance.objects.get_or_create(session=session, user=user)
    if created:
        activity.record(session_id=session.pk, kind=activity.JOIN, user_id=user.pk,
                        step=session.current_step)  # fmt: skip
        session_id, user_id = session.pk, user.pk
        transaction.on_commit(lambda: dashboard.push_rows(session_id, [user_id]))
    return attendance


def _locked(session_id: Any) -> ClassSession:
    return (
        ClassSession.objects.select_related("klass")
        .select_for_update(of=("self",))
        .get(pk=session_id)
    )


@transaction.atomic
def session_move(*, session_id: Any, by: User, move: str) -> ClassSession:
    """The coach moves the session (next, prev, pause, resume, end); everyone follows."""
    session = _locked(session_id)
    if by.pk != session.klass.coach_id:
        raise NotAllowedError
    before = machine.Position(session.state, session.current_step, session.total_steps)
    after = machine.apply(before, move)  # InvalidMoveError for a move the state refuses
    now = timezone.now()
    session.state, session.current_step = after.state, after.step
    if after.step != before.step:
        session.step_started_at = now
    if move == "next" and before.state == machine.WAITING:
        session.started_at = now
        activity.record(session_id=session.pk, kind=activity.START, user_id=by.pk, at=now)
    if move == "pause":
        session.paused_at = now
    if move == "resume" and session.paused_at and session.step_started_at:
        # The countdown does not run while paused.
        session.step_started_at += now - session.paused_at
        session.paused_at = None
    if move == "end":
        session.ended_at = now
        Hand.objects.filter(session=session, state=Hand.State.RAISED).update(
            state=Hand.State.LOWERED, closed_at=now
        )
    session.save()
    kind = {
        "next": activity.STEP,
        "prev": activity.STEP,
        "pause": activity.PAUSE,
        "resume": activity.RESUME,
        "end": activity.END,
    }[move]
    activity.record(
        session_id=session.pk, kind=kind, user_id=by.pk, step=session.current_step,
        data={"move": move}, at=now,
    )  # fmt: skip
    html = frames.stage_frame(session, with_answer=after.step != before.step or move == "end")
    events.publish_on_commit(events.conv_group(session.conversation_id), events.frame(html))
    # The dashboard's rows follow from the caller (`dashboard.note_all`), batched: rendering
    # every row here would hold the process while the stage frame fans out to every learner.
    return session


# --- learners' actions ---------------------------------------------------------------------------


def _attendance(session: ClassSession, user: User) -> Attendance:
    attendance = Attendance.objects.filter(session=session, user=user).first()
    if attendance is None:
        raise NotAllowedError
    return attendance


@transaction.atomic
def answer_submit(
    *, session_id: Any, user: User, step: Any, text: str, duration_seconds: float | None = None
) -> ClassAnswer:
    """A learner's answer to a question of the session (answering again replaces it).

    The answer counts for the question the learner's page showed, which may be the one
    just before the current: a coach moving on never cuts an answer off. A dictated
    answer's speaking time (`duration_seconds`, already validated) gives its pace.
    Answering again with other words drops the AI feedback asked for the old ones.
    """
    session = ClassSession.objects.select_related("klass").get(pk=session_id)
    _attendance(session, user)
    if session.state not in (ClassSession.State.RUNNING, ClassSession.State.PAUSED):
        raise SessionClosedError
    try:
        step = int(step)
    except (TypeError, ValueError):
        step = session.current_step
    if not 1 <= step <= session.current_step:
        step = session.current_step
    text = text.strip()[:MAX_ANSWER_LENGTH]
    question = str(session.questions[step - 1])
    category = session.klass.persona.category if session.klass.persona else "interview"
    found = analyse(text, question, category=category, duration_seconds=duration_seconds)
    analysis = found.to_dict()
    analysis["feedback"] = offline_feedback(text, question, category, analysis=found)
    if duration_seconds:
        analysis["speech"] = {"duration_seconds": duration_seconds}
    now = timezone.now()
    mine = ClassAnswer.objects.select_for_update().filter(session=session, user=user, step=step)
    answer = mine.first()
    created = answer is None
    if answer is None:
        answer = ClassAnswer(session=session, user=user, step=step, created_at=now)
    try:
        with transaction.atomic():
            answer = _answer_stored(answer, text, analysis, now)
    except IntegrityError:  # two pages of one learner answered at once: the last one counts
        answer, created = _answer_stored(mine.get(), text, analysis, now), False
    activity.record(
        session_id=session.pk, kind=activity.ANSWER, user_id=user.pk, step=step,
        data={"words": analysis.get("words", 0), "again": not created}, at=now,
    )  # fmt: skip
    return answer


def _answer_stored(
    answer: ClassAnswer, text: str, analysis: dict[str, Any], now: Any
) -> ClassAnswer:
    if answer._state.adding:  # the learner's first answer to this question
        answer.text, answer.analysis, answer.updated_at = text, analysis, now
        answer.save()
        return answer
    fields = ["text", "analysis", "updated_at"]
    if answer.text != text:
        feedback.reset(answer)
        fields += ["ai_status", "ai_feedback", "ai_usage"]
    answer.text, answer.analysis, answer.updated_at = text, analysis, now
    # Only these: the AI feedback of unchanged words is the feedback task's to write.
    answer.save(update_fields=fields)
    return answer


@transaction.atomic
def hand_raise(*, session_id: Any, user: User, note: str = "") -> Hand:
    """A learner asks for help (raising it again only changes the note)."""
    session = ClassSession.objects.get(pk=session_id)
    _attendance(session, user)
    if session.state == ClassSession.State.ENDED:
        raise SessionClosedError
    note = note.strip()[:MAX_NOTE_LENGTH]
    hand = Hand.objects.filter(session=session, user=user, state=Hand.State.RAISED).first()
    if hand is not None:
        hand.note = note or hand.note
        hand.save(update_fields=["note"])
        return hand
    hand = Hand.objects.create(session=session, user=user, step=session.current_step, note=note)
    activity.record(session_id=session.pk, kind=activity.HAND_RAISED, user_id=user.pk,
                    step=session.current_step, data={"hand": hand.pk})  # fmt: skip
    return hand


@transaction.atomic
def hand_lower(*, session_id: Any, user: User) -> Hand | None:
    """A learner lowers their own raised hand (None when none was up)."""
    session = ClassSession.objects.get(pk=session_id)
    _attendance(session, user)
    hand = (
        Hand.objects.select_for_update()
        .filter(session=session, user=user, state=Hand.State.RAISED)
        .first()
    )
    if hand is None:
        return None
    hand.state, hand.closed_at = Hand.State.LOWERED, timezone.now()
    hand.save(update_fields=["state", "closed_at"])
    activity.record(session_id=session.pk, kind=activity.HAND_LOWERED, user_id=user.pk,
                    step=session.current_step, data={"hand": hand.pk})  # fmt: skip
    return hand


@transaction.atomic
def hand_resolve(*, session_id: Any, by: User, hand_id: Any) -> Hand | None:
    """The coach marks a raised hand as dealt with (None when it was no longer up)."""
    session = ClassSession.objects.select_related("klass").get(pk=session_id)
    if by.pk != session.klass.coach_id:
        raise NotAllowedError
    try:
        hand_pk = int(hand_id)
    except (TypeError, ValueError):
        return None
    hand = (
        Hand.objects.select_for_update()
        .filter(session=session, pk=hand_pk, state=Hand.State.RAISED)
        .first()
    )
    if hand is None:
        return None
    hand.state, hand.closed_at, hand.resolved_by = Hand.State.RESOLVED, timezone.now(), by
    hand.save(update_fields=["state", "closed_at", "resolved_by"])
    activity.record(
        session_id=session.pk, kind=activity.HAND_RESOLVED, user_id=hand.user_id,
        step=session.current_step, data={"hand": hand.pk, "by": by.pk,
                                         "waited": hand.wait_seconds},
    )  # fmt: skip
    return hand
