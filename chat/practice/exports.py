"""One conversation as Markdown or JSON, for the learner to keep."""

from __future__ import annotations

import json
from typing import Any

from django.utils import timezone

from chat import cards
from chat.models import Conversation, Feedback, Message


def _feedback(message: Message) -> Feedback | None:
    if message.role != Message.Role.USER:
        return None
    try:
        return message.feedback
    except Feedback.DoesNotExist:
        return None


def feedback_markdown(feedback: Feedback, answer: str) -> list[str]:
    """An answer's feedback as Markdown lines (the transcript and the report)."""
    card = cards.card_for(feedback, answer)
    lines = []
    if card.behavioural:
        parts = ", ".join(f"{label} {'✓' if ok else '✗'}" for _, label, ok in card.parts)
        lines.append(f"> STAR: {parts}")
    lines.append(f"> Words: {card.words} · fillers: {card.fillers} · hedges: {card.hedges}")
    if card.words_per_minute:
        lines.append(f"> Words per minute: {card.words_per_minute}")
    lines += [f"> - {text}" for text in card.missing]
    lines += [f"> {label}: {score}/5 — {reason}" for _, label, score, reason in card.rubric]
    if feedback.strength:
        lines.append(f"> Strength: {feedback.strength}")
    if feedback.improvement:
        lines.append(f"> Improve: {feedback.improvement}")
    if feedback.rewrite:
        lines.append(f"> Try saying: {feedback.rewrite}")
    lines += [f"> {c.get('original')} → {c.get('corrected')}" for c in card.corrections]
    return lines


def feedback_json(feedback: Feedback) -> dict[str, Any]:
    """An answer's feedback, machine-readable."""
    return {
        "status": feedback.status,
        "question": feedback.question,
        "analysis": feedback.analysis,
        "rubric": feedback.rubric,
        "strength": feedback.strength,
        "improvement": feedback.improvement,
        "rewrite": feedback.rewrite,
        "corrections": feedback.corrections,
        "language": feedback.language,
        "model": feedback.model,
    }


def _speaker(message: Message, coach: str) -> str:
    if message.role == Message.Role.ASSISTANT:
        return coach
    if message.role == Message.Role.SYSTEM:
        return "System"
    return message.author.display_name if message.author else "Someone"


def as_markdown(conversation: Conversation, messages: list[Message]) -> str:
    """A readable transcript."""
    coach = conversation.persona.name if conversation.persona else "AI coach"
    lines = [f"# {conversation.title}", ""]
    if conversation.persona:
        lines += [f"Coach: {conversation.persona.name}", ""]
    for m in messages:
        when = timezone.localtime(m.created_at).strftime("%Y-%m-%d %H:%M")
        status = "" if m.status == Message.Status.COMPLETE else f" ({m.status})"
        lines += [f"**{_speaker(m, coach)}** · {when}{status}", "", m.content, ""]
        feedback = _feedback(m)
        if feedback is not None:
            lines += [*feedback_markdown(feedback, m.content), ""]
    return "\n".join(lines)


def as_json(conversation: Conversation, messages: list[Message]) -> str:
    """Everything, machine-readable."""
    data: dict[str, Any] = {
        "id": str(conversation.pk),
        "title": conversation.title,
        "kind": conversation.kind,
        "persona": conversation.persona.name if conversation.persona else None,
        "created_at": conversation.created_at.isoformat(),
        "messages": [
            {
                "id": str(m.pk),
                "seq": m.seq,
                "role": m.role,
                "kind": m.kind,
                "status": m.status,
                "author": m.author.display_name if m.author else None,
                "content": m.content,
                "created_at": m.created_at.isoformat(),
                "metadata": m.metadata,
                **({"feedback": feedback_json(f)} if (f := _feedback(m)) else {}),
            }
            for m in messages
        ],
    }
    return json.dumps(data, ensure_ascii=False, indent=2)
