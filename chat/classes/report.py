"""After a session: the coach's report and each learner's, read from what was stored.

What reads the activity log first stores what this process still holds of it
(`activity.flush`): a report or CSV opened the moment a session ends has every event, not
just those the background flusher got to.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from accounts.models import User
from chat.classes import activity
from chat.models import ActivityEvent, Attendance, ClassAnswer, ClassSession, Hand

CSV_COLUMNS = ["at", "event", "learner", "user_id", "question", "data", "event_id"]


@dataclass
class QuestionReport:
    """One question: how long it was up and who answered it how."""

    step: int
    text: str
    seconds: float | None
    answers: list[ClassAnswer] = field(default_factory=list)


@dataclass
class SessionReport:
    """The coach's view of a finished (or running) session."""

    session: ClassSession
    joined: int
    answered_any: int
    questions: list[QuestionReport]
    hands: list[Hand]
    mean_wait: float | None
    missing: list[str]  # learners who answered nothing


def _step_times(session: ClassSession) -> dict[int, float]:
    """Seconds each question was shown, from the activity log's step changes (pauses out)."""
    activity.flush()
    events = list(
        ActivityEvent.objects.filter(session=session)
        .order_by("at", "id")
        .values("kind", "step", "at")
    )
    totals: dict[int, float] = {}
    current, since = 0, None
    for e in events:
        if since is not None and current:
            totals[current] = totals.get(current, 0.0) + (e["at"] - since).total_seconds()
        if e["kind"] in ("step", "resume"):
            current, since = e["step"], e["at"]
        elif e["kind"] in ("pause", "end"):
            since = None
    return totals


def session_report(session: ClassSession) -> SessionReport:
    """Participation, time per question, answers with their analysis, help requests."""
    answers = list(
        ClassAnswer.objects.filter(session=session)
        .select_related("user")
        .order_by("step", "user__nickname")
    )
    times = _step_times(session)
    questions = [
        QuestionReport(step=i, text=str(q), seconds=times.get(i))
        for i, q in enumerate(session.questions, start=1)
    ]
    for answer in answers:
        if 1 <= answer.step <= len(questions):
            questions[answer.step - 1].answers.append(answer)
    hands = list(Hand.objects.filter(session=session).select_related("user", "resolved_by"))
    waits = [h.wait_seconds for h in hands if h.state == Hand.State.RESOLVED and h.wait_seconds]
    attendances = list(Attendance.objects.filter(session=session).select_related("user"))
    answered = {a.user_id for a in answers}
    return SessionReport(
        session=session,
        joined=len(attendances),
        answered_any=len(answered),
        questions=questions,
        hands=hands,
        mean_wait=sum(waits) / len(waits) if waits else None,
        missing=sorted(a.user.display_name for a in attendances if a.user_id not in answered),
    )


def learner_report(session: ClassSession, user: User) -> list[tuple[int, str, ClassAnswer | None]]:
    """A learner's questions with their answers (and each answer's feedback)."""
    mine = {a.step: a for a in ClassAnswer.objects.filter(session=session, user=user)}
    return [(i, str(q), mine.get(i)) for i, q in enumerate(session.questions, start=1)]


def activity_csv(session: ClassSession) -> str:
    """The session's activity log as CSV, oldest first."""
    activity.flush()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    rows = ActivityEvent.objects.filter(session=session).select_related("user").order_by("at", "id")
    for e in rows:
        name = e.user.display_name if e.user else ""
        # A name starting with = + - @ would be a formula in a spreadsheet.
        if name[:1] in ("=", "+", "-", "@"):
            name = "'" + name
        writer.writerow(
            [e.at.isoformat(), e.kind, name, e.user_id or "", e.step, _json(e.data), e.event_id]
        )
    return out.getvalue()


def _json(data: Any) -> str:
    import json

    return json.dumps(data, ensure_ascii=False, sort_keys=True)
