"""Socket fragments of a live class, rendered from templates/chat/classes/live.html's partials.

A stage frame is rendered once for the whole session (every page of it shows the same
question); a learner's own answer form and hand go to that learner's pages only, and the
dashboard's rows to the coach's.
"""

from __future__ import annotations

from django.template.loader import render_to_string

from accounts.models import User
from chat.classes import feedback, machine, selectors
from chat.models import ClassAnswer, ClassSession, Hand

LIVE = "chat/classes/live.html"


def _render(partial: str, context: dict[str, object]) -> str:
    return render_to_string(f"{LIVE}#{partial}", {"oob": True, **context}).strip()


def stage_context(session: ClassSession) -> dict[str, object]:
    """What the stage and the coach's controls need."""
    position = machine.Position(session.state, session.current_step, session.total_steps)
    return {
        "session": session,
        "stage": selectors.stage_of(session),
        "moves": machine.allowed(position),
    }


def stage(session: ClassSession) -> str:
    """The current question, its number and countdown, and the state (every page)."""
    return _render("class-stage", stage_context(session))


def coach_controls(session: ClassSession) -> str:
    """The coach's buttons for the moves the state allows (only the coach's page has them)."""
    return _render("coach-controls", stage_context(session))


def learner_answer(
    session: ClassSession, answer: ClassAnswer | None = None, user: User | None = None
) -> str:
    """A learner's answer form for the current question (with their answer when given).

    With the answer's learner, its AI feedback part too: the rubric, or the button with
    their quota read fresh, or why not.
    """
    ai = feedback.offer(answer, user) if answer is not None and user is not None else None
    return _render("learner-answer", {"session": session, "answer": answer, "ai": ai})


def answer_ai(answer: ClassAnswer, user: User) -> str:
    """Only the AI feedback part of an answer card: an answer being edited keeps its text."""
    return _render("answer-ai", {"answer": answer, "ai": feedback.offer(answer, user)})


def stage_frame(session: ClassSession, *, with_answer: bool = True) -> str:
    """What every page of the session gets after a move (a fresh answer form on a new step)."""
    parts = [stage(session), coach_controls(session)]
    if with_answer:
        parts.append(learner_answer(session))
    return "\n".join(parts)


def hand_box(session: ClassSession, hand: Hand | None, *, resolved: bool = False) -> str:
    """A learner's raise/lower control and what became of their last hand."""
    return _render("hand-box", {"session": session, "hand": hand, "resolved": resolved})


def dashboard_rows(session: ClassSession, rows: list[selectors.LearnerRow]) -> str:
    """Learners' rows, each replacing its own `<tr id="learner-<id>">`."""
    return "\n".join(_render("dashboard-row", {"session": session, "row": row}) for row in rows)


def dashboard_body(session: ClassSession) -> str:
    """Every learner's row at once (after a step change: every 'answered' flag resets)."""
    return _render(
        "dashboard-body", {"session": session, "rows": selectors.dashboard_rows(session)}
    )


def new_learner_rows(session: ClassSession, rows: list[selectors.LearnerRow]) -> str:
    """Rows of learners the dashboard does not show yet, appended to its table."""
    return _render("dashboard-append", {"session": session, "rows": rows})


def counts(session: ClassSession) -> str:
    """Joined / online / answered now."""
    return _render("class-counts", {"session": session, "counts": selectors.counts(session)})


def hand_raised(hand: Hand, user: User) -> str:
    """A new hand on the dashboard's list, and an alert for screen readers."""
    return _render("hand-raised", {"hand": hand, "name": user.display_name})


def hand_gone(hand_id: int) -> str:
    """A hand leaves the dashboard's list (lowered or resolved)."""
    return _render("hand-gone", {"hand_id": hand_id})
