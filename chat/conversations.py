"""The core of every conversation: who may see it, its messages, and how one is stored.

Reads take a fixed number of queries; `message_create` is the one write every subject
uses to add a message (with the conversation's next sequence number).
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts.models import User
from chat.models import Connection, Conversation, Membership, Message

PAGE_SIZE = 50


class NotAMemberError(Exception):
    """A public room the person may look at but has not joined."""


# --- access -----------------------------------------------------------------------------------


def conversation_for(
    user: User, conversation_id: object, *, require_member: bool = False
) -> Conversation | None:
    """The conversation if `user` may see it, else None — for every view and the socket.

    Someone else's practice conversation and a private room the person is not in do not
    exist as far as they can tell (None, like an unknown id). A public room is visible to
    everyone signed in; with `require_member` a non-member gets NotAMemberError.
    """
    conversation = (
        Conversation.objects.select_related("persona", "owner").filter(pk=conversation_id).first()
    )
    if conversation is None:
        return None
    if conversation.kind == Conversation.Kind.PRACTICE:
        return conversation if conversation.owner_id == user.pk else None
    if conversation.is_public and not require_member:
        return conversation
    if not Membership.objects.filter(conversation=conversation, user=user).exists():
        if conversation.is_public:
            raise NotAMemberError
        return None
    return conversation


def is_member(user: User, conversation: Conversation) -> bool:
    """Whether the user belongs to the conversation."""
    if conversation.kind == Conversation.Kind.PRACTICE:
        return conversation.owner_id == user.pk
    return Membership.objects.filter(conversation=conversation, user=user).exists()


def member_count(conversation: Conversation) -> int:
    """How many people are in the conversation."""
    return Membership.objects.filter(conversation=conversation).count()


def coach_name(conversation: Conversation) -> str:
    """The name the AI coach has in this conversation ("" for the default name)."""
    return conversation.persona.name if conversation.persona else ""


def online_members(conversation: Conversation) -> list[tuple[int, str]]:
    """(user id, nickname) of members with a live socket on it, by nickname."""
    cutoff = timezone.now() - timezone.timedelta(seconds=settings.PRESENCE_TIMEOUT_SECONDS)
    rows = (
        Connection.objects.filter(conversation=conversation, last_seen__gte=cutoff)
        .values_list("user_id", "user__nickname")
        .distinct()
    )
    return sorted(set(rows), key=lambda row: (row[1].lower(), row[0]))


# --- messages: reads ----------------------------------------------------------------------------


def messages_qs(conversation_id: object) -> QuerySet[Message]:
    """Messages of a conversation with their authors and coach, oldest first."""
    return (
        Message.objects.filter(conversation_id=conversation_id)
        .select_related("author", "conversation__persona")
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


# --- messages: the write ------------------------------------------------------------------------


def _next_seq(conversation_id: Any) -> int:
    # The UPDATE takes the row lock (PostgreSQL) or the write lock (SQLite) until commit,
    # so sequence numbers follow commit order and a page can catch up by seq without gaps.
    Conversation.objects.filter(pk=conversation_id).update(
        last_seq=F("last_seq") + 1, last_activity_at=timezone.now()
    )
    return Conversation.objects.values_list("last_seq", flat=True).get(pk=conversation_id)


@transaction.atomic
def message_create(
    *,
    conversation: Conversation,
    author: User | None,
    content: str,
    role: str = Message.Role.USER,
    kind: str = Message.Kind.TEXT,
    status: str = Message.Status.COMPLETE,
    metadata: dict[str, Any] | None = None,
) -> Message:
    """Store a message with the conversation's next sequence number."""
    message = Message.objects.create(
        conversation=conversation,
        seq=_next_seq(conversation.pk),
        author=author,
        role=role,
        kind=kind,
        content=content,
        status=status,
        metadata=metadata or {},
    )
    # Keep the author in memory so rendering needs no query.
    if author is not None:
        message.author = author
    return message


TITLE_LENGTH = 60
_MARKUP = re.compile(r"[*_`#>|~]+")  # Markdown marks: a title is plain text


def title_from_text(text: str, limit: int = TITLE_LENGTH) -> str:
    """A conversation title from what was said: plain words, cut at a word, with "…"."""
    line = " ".join(_MARKUP.sub("", text).split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1].rsplit(" ", 1)[0] or line[: limit - 1]
    return cut.rstrip(" ,.;:—-") + "…"


def title_from_first_answer(conversation: Conversation, text: str) -> str:
    """Name a practice conversation after its first answer, unless someone renamed it.

    A new conversation is titled with its coach's name (never a date: a title must not
    freeze one time zone); the first answer replaces that, once. Returns the new title, or "".
    """
    default = conversation.persona.name if conversation.persona_id else ""
    title = title_from_text(text)
    if not title or conversation.title != default:
        return ""
    if not Conversation.objects.filter(pk=conversation.pk, title=default).update(title=title):
        return ""
    conversation.title = title
    return title
