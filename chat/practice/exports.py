"""One conversation as Markdown or JSON, for the learner to keep."""

from __future__ import annotations

import json
from typing import Any

from django.utils import timezone

from chat.models import Conversation, Message


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
            }
            for m in messages
        ],
    }
    return json.dumps(data, ensure_ascii=False, indent=2)
