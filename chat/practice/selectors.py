"""Reads of practice: the coaches one can choose, a learner's conversations."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet

from accounts.models import User
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
