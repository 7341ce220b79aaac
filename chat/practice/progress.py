"""Reads for the session report and the progress page, from the stored feedback.

The progress chart is drawn by its template from the points computed here, not by a
charting library: pygal (the well-kept server-side one) writes a `<style>` element and
inline scripts into its SVG, which the strict CSP (style-src 'self' + nonce, script-src
'self') blocks; the chart needs only polylines and labels.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from chat import cards
from chat.models import Conversation, Feedback, Message

# --- one session -------------------------------------------------------------------------------


@dataclass
class ReportItem:
    """One answered question of a session."""

    number: int
    question: str
    answer: Message
    card: cards.Card


@dataclass
class Report:
    """A session: its answers with their findings, then three priorities for next time."""

    conversation: Conversation
    items: list[ReportItem]
    priorities: list[str]


def _shown_feedback(conversation: Conversation) -> list[Feedback]:
    return list(
        Feedback.objects.filter(conversation=conversation, message__is_shown=True)
        .select_related("message")
        .order_by("message__seq")
    )


PRIORITY_ORDER = (
    "specific_example",
    "personal_contribution",
    "action",
    "result",
    "measurable_result",
    "situation",
    "task",
    "onset",
    "duration",
    "severity",
    "fillers",
    "hedges",
    "corrections",
)


def _priority(flag: str) -> str:
    return {
        "specific_example": _("Tell one real occasion, not what you usually do."),
        "personal_contribution": _("Say what you did yourself: “I”, not only “we”."),
        "action": _("Say what you did, step by step."),
        "result": _("End each story with its result."),
        "measurable_result": _("Put a number on your results."),
        "situation": _("Open with one sentence of context: where and when."),
        "task": _("Say what you had to achieve before what you did."),
        "onset": _("Say when it started."),
        "duration": _("Say how long it lasts."),
        "severity": _("Say how bad it is, on a scale from one to ten."),
        "fillers": _("Replace fillers (um, like, you know) with a short pause."),
        "hedges": _("Drop “I think” and “maybe” when you tell what happened."),
        "corrections": _("Go over the corrections and say those sentences again."),
    }.get(flag, flag)


def _axis_priority(axis: str) -> str:
    return _("Work on %(axis)s: it was your lowest score.") % {
        "axis": cards.axis_label(axis).lower()
    }


def priorities(feedback: list[Feedback]) -> list[str]:
    """The three most useful things to work on next time, most frequent problem first."""
    counts: Counter[str] = Counter()
    words = fillers = 0
    for f in feedback:
        data = f.analysis or {}
        counts.update(set(data.get("missing") or []) | set(data.get("history_missing") or []))
        words += int(data.get("words") or 0)
        fillers += len(data.get("fillers") or [])
        if len(data.get("hedges") or []) >= 2:
            counts["hedges"] += 1
        if data.get("grammar") or data.get("spelling") or f.corrections:
            counts["corrections"] += 1
    if words and fillers * 100 >= 3 * words:
        counts["fillers"] += max(1, len(feedback) // 2)
    # Ties go to the more useful change first (the offline coach's order).
    ranked = sorted(counts, key=lambda f: (-counts[f], PRIORITY_ORDER.index(f)))
    found = [_priority(flag) for flag in ranked]
    axes: dict[str, list[int]] = {}
    for f in feedback:
        for axis, _label, score, _why in cards.rubric_rows(f.rubric or {}):
            axes.setdefault(axis, []).append(score)
    if axes:
        lowest = min(axes, key=lambda a: sum(axes[a]) / len(axes[a]))
        found.insert(min(1, len(found)), _axis_priority(lowest))
    for fallback in (
        _("Lead with the result, then tell how you got there."),
        _("Keep each answer to about two minutes."),
        _("Practise again tomorrow: a little every day beats a lot once."),
    ):
        if len(found) >= 3:
            break
        if fallback not in found:
            found.append(fallback)
    return found[:3]


def session_report(conversation: Conversation) -> Report:
    """The report of one practice conversation."""
    stored = _shown_feedback(conversation)
    items = [
        ReportItem(
            number=i,
            question=f.question,
            answer=f.message,
            card=cards.card_for(f, f.message.content),
        )
        for i, f in enumerate(stored, 1)
    ]
    return Report(conversation=conversation, items=items, priorities=priorities(stored))


# --- over time ---------------------------------------------------------------------------------

CHART_WIDTH = 640
PANEL_HEIGHT = 120
PANEL_GAP = 40
LEFT = 48


@dataclass
class Series:
    """One skill over time: its points (day, value) and how to draw them."""

    key: str
    label: str
    unit: str
    top: float  # the value at the top of the panel
    points: list[tuple[dt.date, float]] = field(default_factory=list)
    offset: int = 0  # the panel's y position in the SVG

    @property
    def polyline(self) -> str:
        """The SVG points of the line (x by order, y scaled to the panel)."""
        n = len(self.points)
        width = CHART_WIDTH - LEFT - 16
        coords = []
        for i, (_day, value) in enumerate(self.points):
            x = LEFT + (width * i / (n - 1) if n > 1 else width / 2)
            y = self.offset + PANEL_HEIGHT - PANEL_HEIGHT * min(value, self.top) / self.top
            coords.append(f"{x:.1f},{y:.1f}")
        return " ".join(coords)

    @property
    def dots(self) -> list[tuple[str, str, str]]:
        """(x, y, label) of each point, for circles with a title."""
        pairs = [c.split(",") for c in self.polyline.split()]
        return [
            (x, y, f"{day:%Y-%m-%d}: {value:g}")
            for (x, y), (day, value) in zip(pairs, self.points, strict=True)
        ]

    @property
    def latest(self) -> float | None:
        return self.points[-1][1] if self.points else None

    @property
    def label_y(self) -> int:
        return self.offset - 8

    @property
    def bottom(self) -> int:
        return self.offset + PANEL_HEIGHT


@dataclass
class Best:
    """The best answer given to one question."""

    question: str
    answer: Message
    score: float
    conversation_id: str


@dataclass
class Progress:
    """A learner's skills over time, their best answers and their streak."""

    series: list[Series]
    rows: list[tuple[dt.date, list[str]]]
    best: list[Best]
    streak: int
    days: int
    answers: int

    @property
    def height(self) -> int:
        return len(self.series) * (PANEL_HEIGHT + PANEL_GAP) + 10


def _score(f: Feedback) -> float:
    """An answer's overall score out of 5: the rubric average, else its STAR completeness."""
    rows = cards.rubric_rows(f.rubric or {})
    if rows:
        return round(sum(r[2] for r in rows) / len(rows), 1)
    star = (f.analysis or {}).get("star") or {}
    return round(5 * sum(1 for p in cards.PARTS if star.get(p)) / 4, 1)


def streak(days: set[dt.date], today: dt.date) -> int:
    """Days practised in a row, ending today (or yesterday: today may still come)."""
    day = today if today in days else today - dt.timedelta(days=1)
    count = 0
    while day in days:
        count += 1
        day -= dt.timedelta(days=1)
    return count


def progress(user: User, *, today: dt.date | None = None) -> Progress:
    """Per day: STAR completeness, fillers per 100 words, the rubric average when there."""
    stored = list(
        Feedback.objects.filter(
            conversation__owner=user,
            conversation__kind=Conversation.Kind.PRACTICE,
            message__is_shown=True,
        )
        .select_related("message")
        .order_by("created_at")
    )
    by_day: dict[dt.date, list[Feedback]] = {}
    for f in stored:
        by_day.setdefault(timezone.localdate(f.created_at), []).append(f)
    star = Series("star", _("STAR completeness"), "%", 100.0)
    fillers = Series("fillers", _("Fillers per 100 words"), "", 10.0)
    rubric = Series("rubric", _("Average score (AI coach)"), "/5", 5.0)
    rows = []
    for day, items in sorted(by_day.items()):
        behavioural = [f for f in items if (f.analysis or {}).get("behavioural")]
        cells = ["–", "–", "–"]
        if behavioural:
            parts = [
                sum(1 for p in cards.PARTS if ((f.analysis or {}).get("star") or {}).get(p))
                for f in behavioural
            ]
            complete = round(100 * sum(parts) / (4 * len(parts)))
            star.points.append((day, float(complete)))
            cells[0] = f"{complete}%"
        words = sum(int((f.analysis or {}).get("words") or 0) for f in items)
        if words:
            count = sum(len((f.analysis or {}).get("fillers") or []) for f in items)
            per_100 = round(100 * count / words, 1)
            fillers.points.append((day, per_100))
            cells[1] = f"{per_100:g}"
        scored = [f for f in items if cards.rubric_rows(f.rubric or {})]
        if scored:
            average = round(sum(_score(f) for f in scored) / len(scored), 1)
            rubric.points.append((day, average))
            cells[2] = f"{average:g}/5"
        rows.append((day, cells))
    fillers.top = max([fillers.top, *(v for _d, v in fillers.points)])
    series = [s for s in (star, fillers, rubric) if s.points]
    for i, s in enumerate(series):
        s.offset = 24 + i * (PANEL_HEIGHT + PANEL_GAP)
    best: dict[str, Best] = {}
    for f in stored:
        key = f.question.strip() or _("(no question)")
        score = _score(f)
        if key not in best or score > best[key].score:
            best[key] = Best(key, f.message, score, str(f.conversation_id))
    return Progress(
        series=series,
        rows=rows,
        best=sorted(best.values(), key=lambda b: -b.score)[:20],
        streak=streak(set(by_day), today or timezone.localdate()),
        days=len(by_day),
        answers=len(stored),
    )
