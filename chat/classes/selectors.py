"""Reads of live classes: lists, access, the dashboard's rows, a learner's current screen."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from accounts.models import User
from chat.classes import joincodes
from chat.models import Attendance, Class, ClassAnswer, ClassSession, Hand


def classes_coached_by(user: User) -> QuerySet[Class]:
    """The classes a coach runs, newest first, with their learner counts."""
    return Class.objects.filter(coach=user).annotate(learner_count=Count("learners"))


def classes_of_learner(user: User) -> QuerySet[Class]:
    """The classes a learner is enrolled in, with their coach."""
    return Class.objects.filter(learners=user).select_related("coach")


def live_sessions_of_learner(user: User) -> list[ClassSession]:
    """Sessions not ended of the classes the learner is in (for their home page)."""
    return list(
        ClassSession.objects.filter(klass__learners=user)
        .exclude(state=ClassSession.State.ENDED)
        .select_related("klass")
    )


def class_for(user: User, class_id: Any) -> Class | None:
    """The class if the person coaches it or is enrolled in it (else None: a 404)."""
    klass = Class.objects.select_related("coach", "persona").filter(pk=class_id).first()
    if klass is None:
        return None
    if klass.coach_id == user.pk or klass.learners.filter(pk=user.pk).exists():
        return klass
    return None


def session_for(user: User, session_id: Any) -> ClassSession | None:
    """The session if the person is its coach, joined it or is enrolled (else None: a 404)."""
    session = (
        ClassSession.objects.select_related("klass", "klass__coach", "klass__persona")
        .filter(pk=session_id)
        .first()
    )
    if session is None:
        return None
    if session.klass.coach_id == user.pk:
        return session
    if session.conversation.memberships.filter(user=user).exists():
        return session
    if session.klass.learners.filter(pk=user.pk).exists():
        return session  # enrolled: opening the session joins it
    return None


def session_of_conversation(conversation_id: Any) -> ClassSession | None:
    """The live session a class conversation belongs to."""
    return (
        ClassSession.objects.select_related("klass").filter(conversation_id=conversation_id).first()
    )


def session_by_code(typed: str) -> ClassSession | None:
    """The open session with this join code (any case, spaces ignored), or None."""
    code = joincodes.normalise(typed)
    if not joincodes.looks_valid(code):
        return None
    return (
        ClassSession.objects.select_related("klass")
        .filter(join_code=code)
        .exclude(state=ClassSession.State.ENDED)
        .first()
    )


def sessions_of_class(klass: Class) -> list[ClassSession]:
    """A class's sessions, newest first."""
    return list(klass.sessions.all())


# --- the coach's dashboard ------------------------------------------------------------------------


@dataclass
class LearnerRow:
    """One learner's row on the dashboard."""

    user_id: int
    name: str
    online: bool
    answered_now: bool
    answered: int
    hand: Hand | None
    last_answer: str
    last_ai: str = ""  # the latest answer's AI feedback status (pending / complete / failed)
    last_ai_score: float | None = None  # its mean rubric score once complete


def dashboard_rows(session: ClassSession, user_ids: list[int] | None = None) -> list[LearnerRow]:
    """Rows of the session's learners (or of some of them), by name: three queries."""
    cutoff = timezone.now() - timedelta(seconds=settings.PRESENCE_TIMEOUT_SECONDS)
    attendances = Attendance.objects.filter(session=session).select_related("user")
    if user_ids is not None:
        attendances = attendances.filter(user_id__in=user_ids)
    attendance_list = list(attendances)
    ids = [a.user_id for a in attendance_list]
    # Only the three columns a row shows, as tuples: the model instances (each decoding its
    # analysis JSON) were most of a 200-row dashboard's render (py-spy, bench part classes).
    answers: dict[int, list[tuple[int, str, str, Any]]] = {}
    for user_id, step, text, ai_status, ai_feedback in (
        ClassAnswer.objects.filter(session=session, user_id__in=ids)
        .order_by("updated_at")
        .values_list("user_id", "step", "text", "ai_status", "ai_feedback")
    ):
        answers.setdefault(user_id, []).append((step, text, ai_status, ai_feedback))
    hands = {
        h.user_id: h
        for h in Hand.objects.filter(session=session, user_id__in=ids, state=Hand.State.RAISED)
    }
    rows = []
    for a in attendance_list:
        mine = answers.get(a.user_id, [])
        rows.append(
            LearnerRow(
                user_id=a.user_id,
                name=a.user.display_name,
                online=a.online and a.last_seen >= cutoff,
                answered_now=any(answer[0] == session.current_step for answer in mine),
                answered=len(mine),
                hand=hands.get(a.user_id),
                last_answer=mine[-1][1] if mine else "",
                last_ai=mine[-1][2] if mine else "",
                last_ai_score=_mean_score(mine[-1][3]) if mine else None,
            )
        )
    return sorted(rows, key=lambda r: (r.name.lower(), r.user_id))


def _mean_score(ai_feedback: Any) -> float | None:
    axes = (ai_feedback or {}).get("rubric") or {}
    scores = [v["score"] for v in axes.values() if isinstance(v, dict) and "score" in v]
    return round(sum(scores) / len(scores), 1) if scores else None


def open_hands(session: ClassSession) -> list[Hand]:
    """Hands still raised, oldest first."""
    return list(
        Hand.objects.filter(session=session, state=Hand.State.RAISED).select_related("user")
    )


def raised_hand(session: ClassSession, user: User) -> Hand | None:
    """The learner's hand if it is up."""
    return Hand.objects.filter(session=session, user=user, state=Hand.State.RAISED).first()


def answer_of(session: ClassSession, user: User, step: int) -> ClassAnswer | None:
    """The learner's answer to one question of the session."""
    return ClassAnswer.objects.filter(session=session, user=user, step=step).first()


def counts(session: ClassSession) -> dict[str, int]:
    """How many learners joined, are online, answered the current question."""
    cutoff = timezone.now() - timedelta(seconds=settings.PRESENCE_TIMEOUT_SECONDS)
    result = Attendance.objects.filter(session=session).aggregate(
        joined=Count("pk"), online=Count("pk", filter=Q(online=True, last_seen__gte=cutoff))
    )
    result["answered"] = (
        ClassAnswer.objects.filter(session=session, step=session.current_step)
        .values("user")
        .distinct()
        .count()
    )
    return result


@dataclass
class Stage:
    """What a page shows of the session now (the same for every learner, but the answer)."""

    session: ClassSession
    deadline: str = ""
    remaining: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def stage_of(session: ClassSession) -> Stage:
    """The session's current screen: its countdown's deadline when there is one."""
    stage = Stage(session=session)
    seconds = session.seconds_per_question
    if seconds and session.step_started_at and session.current_step:
        if session.state == ClassSession.State.RUNNING:
            stage.deadline = (session.step_started_at + timedelta(seconds=seconds)).isoformat()
        elif session.state == ClassSession.State.PAUSED and session.paused_at:
            used = (session.paused_at - session.step_started_at).total_seconds()
            stage.remaining = max(0, int(seconds - used))
    return stage
