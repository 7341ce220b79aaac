"""The core of every conversation: who may see it, its messages, and how one is stored.

Reads take a fixed number of queries; `message_create` is the one write every subject
uses to add a message (with the conversation's next sequence number).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from chat.models import Connection, Conversation, Membership, Message
from chat.rendering import RENDERER_VERSION, render_markdown

PAGE_SIZE = 50
ConversationId = uuid.UUID | str


class NotAMemberError(Exception):
    """A public room the person may look at but has not joined."""


# --- access -----------------------------------------------------------------------------------


def conversation_for(
    user: User, conversation_id: ConversationId, *, require_member: bool = False
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
    return conversation.persona.display_name if conversation.persona else ""


def online_members(conversation: Conversation) -> list[tuple[int, str]]:
    """(user id, nickname) of members with a live socket on it, by nickname."""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.PRESENCE_TIMEOUT_SECONDS)
    rows = (
        Connection.objects.filter(conversation=conversation, last_seen__gte=cutoff)
        .values_list("user_id", "user__nickname")
        .distinct()
    )
    return sorted(set(rows), key=lambda row: (row[1].lower(), row[0]))


# --- messages: reads ----------------------------------------------------------------------------


def messages_qs(
    conversation_id: ConversationId, *, with_conversation: bool = True
) -> QuerySet[Message]:
    """The messages shown (one path through the answers' versions), oldest first."""
    related = ("author", "feedback", *(("conversation__persona",) if with_conversation else ()))
    return (
        Message.objects.filter(conversation_id=conversation_id, is_shown=True)
        .select_related(*related)
        .order_by("seq")
    )


def latest_messages(
    conversation: Conversation | ConversationId,
    *,
    before_seq: int | None = None,
    limit: int = PAGE_SIZE,
) -> list[Message]:
    """The newest `limit` messages (older than `before_seq`), oldest first: one query.

    Given the conversation itself (as views have it), each message points at it instead
    of joining and building its own copy of the conversation and its persona.
    """
    if isinstance(conversation, Conversation):
        known: Conversation | None = conversation
        qs = messages_qs(conversation.pk, with_conversation=False)
    else:
        known, qs = None, messages_qs(conversation)
    if before_seq is not None:
        qs = qs.filter(seq__lt=before_seq)
    shown = list(reversed(qs.order_by("-seq")[:limit]))
    if known is not None:
        for message in shown:
            message.conversation = known
    return shown


def messages_after(
    conversation_id: ConversationId,
    after_seq: int,
    *,
    until_seq: int | None = None,
    limit: int = 500,
) -> list[Message]:
    """Messages newer than `after_seq` (and up to `until_seq`), oldest first."""
    qs = messages_qs(conversation_id).filter(seq__gt=after_seq)
    if until_seq is not None:
        qs = qs.filter(seq__lte=until_seq)
    return list(qs[:limit])


def streaming_messages(conversation_id: ConversationId, *, up_to_seq: int) -> list[Message]:
    """Replies still being generated, at or before `up_to_seq`."""
    return list(
        messages_qs(conversation_id).filter(seq__lte=up_to_seq, status=Message.Status.STREAMING)
    )


# --- messages: the write ------------------------------------------------------------------------


def next_seqs(conversation_id: Any, count: int = 1) -> list[int]:
    """Take the conversation's next `count` sequence numbers, in one statement.

    The UPDATE takes the row lock (PostgreSQL) or the write lock (SQLite) until commit, so
    sequence numbers follow commit order and a page can catch up by seq without gaps.
    UPDATE … RETURNING (SQLite ≥ 3.35, PostgreSQL) saves the read-back.
    """
    connection = connections[Conversation.objects.db]
    meta = Conversation._meta
    quote = connection.ops.quote_name
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {quote('last_seq')} = {quote('last_seq')} + %s, "
        f"{quote('last_activity_at')} = %s WHERE {quote('id')} = %s "
        f"RETURNING {quote('last_seq')}"
    )
    now = meta.get_field("last_activity_at").get_db_prep_value(timezone.now(), connection)
    pk = meta.pk.get_db_prep_value(conversation_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [count, now, pk])
        row = cursor.fetchone()
    if row is None:
        raise Conversation.DoesNotExist(conversation_id)
    last = int(row[0])
    return list(range(last - count + 1, last + 1))


def store_html(message: Message) -> None:
    """Keep a finished coach message's rendered HTML on it (saved with the message)."""
    if message.role == Message.Role.ASSISTANT and message.status != Message.Status.STREAMING:
        message.html = render_markdown(message.content)
        message.html_version = RENDERER_VERSION
    else:
        message.html, message.html_version = "", 0


# No savepoint when called inside a caller's transaction: two statements less per message,
# and a failure rolls the caller's whole transaction back, as it must anyway.
@transaction.atomic(savepoint=False)
def message_create(
    *,
    conversation: Conversation,
    author: User | None,
    content: str,
    role: str = Message.Role.USER,
    kind: str = Message.Kind.TEXT,
    status: str = Message.Status.COMPLETE,
    metadata: dict[str, Any] | None = None,
    seq: int | None = None,
) -> Message:
    """Store a message with the conversation's next sequence number (or `seq`, taken with
    `next_seqs` in the same transaction)."""
    message = Message(
        conversation=conversation,
        seq=next_seqs(conversation.pk)[0] if seq is None else seq,
        author=author,
        role=role,
        kind=kind,
        content=content,
        status=status,
        metadata=metadata or {},
    )
    store_html(message)
    message.save(force_insert=True)
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
    persona = conversation.persona
    # Either name the coach has: the title was made in the learner's language.
    defaults = {persona.name, persona.display_name} if persona is not None else {""}
    title = title_from_text(text)
    if not title or conversation.title not in defaults:
        return ""
    if not Conversation.objects.filter(pk=conversation.pk, title=conversation.title).update(
        title=title
    ):
        return ""
    conversation.title = title
    return title
