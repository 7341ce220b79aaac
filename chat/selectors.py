"""Reads: conversations and messages, each in a fixed number of queries."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet

from accounts.models import User
from chat.models import Conversation, Membership, Message, Persona

PAGE_SIZE = 50


def active_personas() -> QuerySet[Persona]:
    """Personas a learner can choose."""
    return Persona.objects.filter(is_active=True)


def messages_qs(conversation_id: object) -> QuerySet[Message]:
    """Messages of a conversation with their authors, oldest first."""
    return (
        Message.objects.filter(conversation_id=conversation_id)
        .select_related("author")
        .order_by("seq")
    )


def latest_messages(
    conversation_id: object, *, before_seq: int | None = None, limit: int = PAGE_SIZE
) -> list[Message]:
    """The newest `limit` messages (older than `before_seq`), oldest first: one query."""
    qs = messages_qs(conversation_id)
    if before_seq is not None:
        qs = qs.filter(seq__lt=before_seq)
    return list(reversed(qs.order_by("-seq")[:limit]))


def messages_after(
    conversation_id: object, after_seq: int, *, until_seq: int | None = None, limit: int = 500
) -> list[Message]:
    """Messages newer than `after_seq` (and up to `until_seq`), oldest first."""
    qs = messages_qs(conversation_id).filter(seq__gt=after_seq)
    if until_seq is not None:
        qs = qs.filter(seq__lte=until_seq)
    return list(qs[:limit])


def streaming_messages(conversation_id: object, *, up_to_seq: int) -> list[Message]:
    """Replies still being generated, at or before `up_to_seq`."""
    return list(
        messages_qs(conversation_id).filter(seq__lte=up_to_seq, status=Message.Status.STREAMING)
    )


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


def conversation_for(user: User, conversation_id: object) -> Conversation | None:
    """The conversation if `user` may see it: their own practice, or a room they may enter."""
    conversation = (
        Conversation.objects.select_related("persona", "owner").filter(pk=conversation_id).first()
    )
    if conversation is None:
        return None
    if conversation.kind == Conversation.Kind.PRACTICE:
        # Someone else's practice conversation does not exist, as far as they can tell.
        return conversation if conversation.owner_id == user.pk else None
    return conversation


def is_member(user: User, conversation: Conversation) -> bool:
    """Whether the user belongs to the conversation."""
    if conversation.kind == Conversation.Kind.PRACTICE:
        return conversation.owner_id == user.pk
    return Membership.objects.filter(conversation=conversation, user=user).exists()


def member_count(conversation: Conversation) -> int:
    """How many people are in the conversation."""
    return Membership.objects.filter(conversation=conversation).count()
