"""Reads of practice: the coaches one can choose, a learner's conversations."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from accounts.models import User
from chat import rendering
from chat.models import Conversation, Message, Persona


def active_personas() -> QuerySet[Persona]:
    """Personas a learner can choose."""
    return Persona.objects.filter(is_active=True)


def practice_conversations(user: User, query: str = "") -> QuerySet[Conversation]:
    """A learner's practice conversations, newest activity first, optionally searched."""
    qs = Conversation.objects.practice().filter(owner=user).select_related("persona")
    query = query.strip()
    if query:
        in_messages = Message.objects.filter(
            conversation_id=OuterRef("pk"), content__icontains=query
        )
        qs = qs.filter(Q(title__icontains=query) | Exists(in_messages))
    return qs.order_by("-last_activity_at")


SNIPPET_LENGTH = 90


@dataclass
class Day:
    """The conversations last active on one day, in the reader's zone."""

    date: dt.date
    offset: int  # 0 today, 1 yesterday, …
    conversations: list[Conversation]


def practice_history(user: User, query: str = "", limit: int = 100) -> list[Day]:
    """The history list: conversations with their last message's snippet and state, by day."""
    last = Message.objects.filter(conversation_id=OuterRef("pk")).order_by("-seq")
    qs = practice_conversations(user, query).annotate(
        last_text=Subquery(last.values("content")[:1]),
        last_status=Subquery(last.values("status")[:1]),
        last_role=Subquery(last.values("role")[:1]),
    )
    today = timezone.localdate()
    days: list[Day] = []
    for conversation in qs[:limit]:
        # `last_text` is the queryset's annotation (django-stubs does not see those).
        text = cast(Any, conversation).last_text or ""
        # The coach writes Markdown: the row shows its words, not its ** and | marks.
        if cast(Any, conversation).last_role == Message.Role.ASSISTANT:
            text = rendering.plain_words(text, enough=SNIPPET_LENGTH * 2)
        text = " ".join(text.split())
        if len(text) > SNIPPET_LENGTH:
            text = text[: SNIPPET_LENGTH - 1].rsplit(" ", 1)[0] + "…"
        conversation.snippet = text  # type: ignore[attr-defined]
        conversation.state = _state(conversation)  # type: ignore[attr-defined]
        day = timezone.localdate(conversation.last_activity_at)
        if not days or days[-1].date != day:
            days.append(Day(date=day, offset=(today - day).days, conversations=[]))
        days[-1].conversations.append(conversation)
    return days


def _state(conversation: Conversation) -> str:
    """What a row says about where the conversation is: answering, finished (its report is
    ready), interrupted, your turn, waiting for the coach."""
    status = conversation.last_status  # type: ignore[attr-defined]
    if status == Message.Status.STREAMING:
        return "answering"
    if conversation.finished_at is not None:
        return "finished"
    if status in (Message.Status.STOPPED, Message.Status.FAILED):
        return "interrupted"
    if conversation.last_role == Message.Role.ASSISTANT:  # type: ignore[attr-defined]
        return "your-turn"
    return "waiting"
