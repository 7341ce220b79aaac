"""What a feedback card shows, from a stored `Feedback`: plain data for the card partial.

Core on purpose: the page, the socket frames, the report and the exports all read it, so
the labels for every finding are spelled once here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from chat.models import Feedback

PARTS = ("situation", "task", "action", "result")
AXES = ("structure", "relevance", "specificity", "clarity", "language")


def part_label(part: str) -> str:
    """A STAR part (or highlight kind) in the interface language."""
    return {
        "situation": _("Situation"),
        "task": _("Task"),
        "action": _("Action"),
        "result": _("Result"),
        "filler": _("Filler"),
        "hedge": _("Hedge"),
        "we": _("“We” without “I”"),
    }.get(part, part)


def axis_label(axis: str) -> str:
    """A rubric axis in the interface language."""
    return {
        "structure": _("Structure"),
        "relevance": _("Relevance"),
        "specificity": _("Specificity"),
        "clarity": _("Clarity"),
        "language": _("Language"),
    }.get(axis, axis)


def missing_label(flag: str) -> str:
    """What a `missing` flag (or a missing part of a history) means for the learner."""
    return {
        "situation": _("No situation: say where and when it happened."),
        "task": _("No task: say what you had to achieve."),
        "action": _("No action: say what you did, step by step."),
        "result": _("No result: say how it turned out."),
        "personal_contribution": _("“We” throughout: say what you did yourself."),
        "measurable_result": _("The result has no number: time, money, people or a percentage."),
        "specific_example": _("No one real occasion: tell one time it happened."),
        "onset": _("Not said yet: when it started."),
        "duration": _("Not said yet: how long it lasts."),
        "severity": _("Not said yet: how bad it is."),
    }.get(flag, flag)


@dataclass
class Quote:
    """A highlighted phrase of the answer, for the text list screen readers get."""

    kind: str
    label: str
    text: str


@dataclass
class Card:
    """Everything the card partial needs."""

    feedback: Feedback
    message_id: str
    status: str
    behavioural: bool
    parts: list[tuple[str, str, bool]]  # (part, label, present)
    missing: list[str]
    fillers: int
    filler_forms: list[str]
    hedges: int
    words: int
    words_per_minute: float | None
    quotes: list[Quote]
    corrections: list[dict[str, Any]]
    rubric: list[tuple[str, str, int, str]] = field(default_factory=list)  # axis, label, score, why
    average: float | None = None

    @property
    def legend(self) -> list[tuple[str, str]]:
        """(kind, label) of each kind of highlight in this answer, in a stable order."""
        kinds = {q.kind for q in self.quotes}
        order = ("filler", "hedge", "we", *PARTS)
        return [(k, part_label(k)) for k in order if k in kinds]

    @property
    def complete(self) -> bool:
        return self.status == Feedback.Status.COMPLETE

    @property
    def failed(self) -> bool:
        return self.status == Feedback.Status.FAILED


def _spans(items: Any) -> list[tuple[int, int]]:
    out = []
    for item in items or []:
        if isinstance(item, list | tuple) and len(item) == 2:
            out.append((int(item[0]), int(item[1])))
    return out


def rubric_rows(rubric: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    """(axis, label, score, reason) for each stored axis."""
    rows = []
    for axis in AXES:
        value = rubric.get(axis)
        if isinstance(value, dict) and isinstance(value.get("score"), int):
            rows.append((axis, axis_label(axis), int(value["score"]), str(value.get("reason", ""))))
    return rows


def card_for(feedback: Feedback, answer: str) -> Card:
    """The card's data: STAR parts, what is missing, fillers, pace, the rubric when there."""
    data = feedback.analysis or {}
    star = data.get("star") or {}
    behavioural = bool(data.get("behavioural"))
    highlights = [h for h in data.get("highlights") or [] if len(h) == 3]
    quotes = [
        Quote(kind=str(k), label=part_label(str(k)), text=answer[int(a) : int(b)])
        for k, a, b in highlights
        if str(k) in ("filler", "hedge", "we") or behavioural
    ]
    corrections = list(feedback.corrections or [])
    if not corrections:
        corrections = [
            {"original": c.get("original", ""), "corrected": c.get("corrected", "")}
            for c in [*(data.get("grammar") or []), *(data.get("spelling") or [])]
        ]
    fillers = data.get("fillers") or []
    forms: list[str] = []
    for f in fillers:
        if f.get("form") not in forms:
            forms.append(str(f.get("form")))
    missing = [*(data.get("missing") or []), *(data.get("history_missing") or [])]
    rows = rubric_rows(feedback.rubric or {})
    return Card(
        feedback=feedback,
        message_id=str(feedback.message_id),
        status=feedback.status,
        behavioural=behavioural,
        parts=[(p, part_label(p), bool(_spans(star.get(p)))) for p in PARTS],
        missing=[missing_label(m) for m in missing],
        fillers=len(fillers),
        filler_forms=forms[:4],
        hedges=len(data.get("hedges") or []),
        words=int(data.get("words") or 0),
        words_per_minute=data.get("words_per_minute"),
        quotes=quotes,
        corrections=corrections[:5],
        rubric=rows,
        average=round(sum(r[2] for r in rows) / len(rows), 1) if rows else None,
    )


def highlighted(text: str, highlights: Any) -> SafeString:
    """The learner's own text, escaped, with `<mark data-kind=…>` around the highlights.

    Never the user's HTML: every piece is escaped and only our own tags are added; the
    spans come from the stored analysis of this very text and must not overlap.
    """
    marks = sorted(
        (
            (str(k), int(a), int(b))
            for k, a, b in (h for h in highlights or [] if len(h) == 3)
            if 0 <= int(a) < int(b) <= len(text)
        ),
        key=lambda m: m[1],
    )
    out: list[str] = []
    at = 0
    for kind, start, end in marks:
        if start < at or kind not in (*PARTS, "filler", "hedge", "we"):
            continue
        out.append(escape(text[at:start]))
        # Only data-kind: the body is checked for anything htmx or a browser would act on.
        out.append(f'<mark data-kind="{kind}">{escape(text[start:end])}</mark>')
        at = end
    out.append(escape(text[at:]))
    return mark_safe("".join(out).replace("\r\n", "\n").replace("\n", "<br>"))
