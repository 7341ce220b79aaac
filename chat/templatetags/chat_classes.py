"""Template filters of the class reports."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """Seconds as m:ss ("—" when unknown)."""
    if seconds is None:
        return "—"
    total = int(seconds)
    return f"{total // 60}:{total % 60:02d}"


@register.filter
def feedback_html(text: str) -> str:
    """The coach's feedback (Markdown from the offline coach) as sanitised HTML."""
    from chat.rendering import render_markdown

    return render_markdown(text or "")


@register.filter
def ai_feedback(answer: object) -> dict[str, object]:
    """A class answer's stored AI rubric as the rubric partial shows it (empty rows: none)."""
    from chat.classes.feedback import shown

    return shown(answer)  # type: ignore[arg-type]
