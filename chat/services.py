"""Writes: every change to conversations and messages goes through here.

Functions are sync (wrap them with `database_sync_to_async` in consumers) and
return what was written; callers publish frames only after the transaction
committed, so a rolled-back write never reaches a browser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from chat import quota
from chat.models import Conversation, Membership, Message, Persona
from chat.providers import ReplyRequest, Turn

HISTORY_MESSAGES = 40


class QuotaExhausted(Exception):
    """No AI replies are left today."""


class NothingToRegenerate(Exception):
    """There is no finished reply to replace."""


def conv_group(conversation_id: Any) -> str:
    """Group of every socket open on a conversation."""
    return f"conv.{_hex(conversation_id)}"


def ctl_group(conversation_id: Any) -> str:
    """Group of the reply tasks running for a conversation (stop / snapshot requests)."""
    return f"ctl.{_hex(conversation_id)}"


def user_group(user_id: int) -> str:
    """Group of every socket a user has open."""
    return f"user.{user_id}"


def _hex(conversation_id: Any) -> str:
    return getattr(conversation_id, "hex", None) or str(conversation_id).replace("-", "")


def frame_event(html: str, **extra: Any) -> dict[str, Any]:
    """A channel-layer event carrying one pre-rendered frame."""
    return {"type": "chat.frame", "html": html, **extra}


async def publish(group: str, event: dict[str, Any]) -> None:
    """Send an event to a group (call only after the write committed)."""
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(group, event)


def publish_on_commit(group: str, event: dict[str, Any]) -> None:
    """From sync code: send an event once the current transaction commits."""
    transaction.on_commit(lambda: async_to_sync(publish)(group, event))


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


def _title_for(persona: Persona | None) -> str:
    now = timezone.localtime()
    name = persona.name if persona else _("Practice")
    return f"{name} · {now:%Y-%m-%d %H:%M}"


@transaction.atomic
def practice_start(*, user: User, persona: Persona) -> Conversation:
    """Start a practice conversation; the coach's opening line is its first message."""
    conversation = Conversation.objects.create(
        kind=Conversation.Kind.PRACTICE, title=_title_for(persona), persona=persona, owner=user
    )
    Membership.objects.create(conversation=conversation, user=user, role=Membership.Role.OWNER)
    if persona.opening_line:
        message_create(
            conversation=conversation,
            author=None,
            role=Message.Role.ASSISTANT,
            content=persona.opening_line,
            metadata={"opening": True},
        )
    return conversation


def build_request(conversation: Conversation) -> ReplyRequest:
    """What the model sees: the persona's prompt and the recent, finished history."""
    persona = conversation.persona
    recent = list(
        Message.objects.filter(
            conversation=conversation,
            kind=Message.Kind.TEXT,
            role__in=[Message.Role.USER, Message.Role.ASSISTANT],
        )
        .exclude(status=Message.Status.STREAMING)
        .exclude(content="")
        .order_by("-seq")
        .values_list("role", "content")[:HISTORY_MESSAGES]
    )
    history = [Turn(role=role, content=content) for role, content in reversed(recent)]
    if persona is None:
        return ReplyRequest(
            system_prompt=_(
                "You are Practalk's friendly coach in a live chat room of English learners. "
                "Answer briefly and helpfully."
            ),
            history=history,
        )
    return ReplyRequest(
        system_prompt=persona.system_prompt,
        history=history,
        question_bank=persona.question_bank,
        opening_line=persona.opening_line,
        model=persona.model,
        temperature=persona.temperature,
    )


@dataclass
class Exchange:
    """What a send wrote: the user's message and, when the coach answers, the new reply."""

    user_message: Message | None = None
    reply: Message | None = None
    usage_id: int | None = None
    request: ReplyRequest | None = None
    remaining: int = 0
    limit: int = 0
    deleted_ids: list[str] = field(default_factory=list)
    quota_refused: bool = False


def _start_reply(conversation: Conversation, usage: Any) -> tuple[Message, ReplyRequest]:
    request = build_request(conversation)
    reply = message_create(
        conversation=conversation,
        author=None,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        content="",
        metadata={"requested_at": timezone.now().isoformat()},
    )
    usage.message = reply
    usage.save(update_fields=["message"])
    return reply, request


@transaction.atomic
def exchange_start(
    *, user: User, conversation: Conversation, text: str, ask_ai: bool, require_ai: bool
) -> Exchange:
    """Store the user's message and, if the coach is asked, reserve quota and open a reply.

    `require_ai` (practice): with no quota left nothing is stored and QuotaExhausted
    is raised, so the typed text can stay in the box. In a room the message is
    still posted and only the coach's answer is refused.
    """
    exchange = Exchange(limit=quota.daily_limit(user))
    usage = None
    if ask_ai:
        usage, exchange.remaining = quota.reserve(user)
        if usage is None:
            if require_ai:
                raise QuotaExhausted
            exchange.quota_refused = True
    exchange.user_message = message_create(conversation=conversation, author=user, content=text)
    if usage is not None:
        exchange.reply, exchange.request = _start_reply(conversation, usage)
        exchange.usage_id = usage.pk
    return exchange


@transaction.atomic
def reply_regenerate(*, user: User, conversation: Conversation) -> Exchange:
    """Replace the last finished reply with a new one (costs one reply of quota)."""
    last = (
        Message.objects.filter(conversation=conversation)
        .exclude(role=Message.Role.SYSTEM)
        .order_by("-seq")
        .first()
    )
    if (
        last is None
        or last.role != Message.Role.ASSISTANT
        or last.status == Message.Status.STREAMING
        or last.metadata.get("opening")
    ):
        raise NothingToRegenerate
    usage, remaining = quota.reserve(user)
    if usage is None:
        raise QuotaExhausted
    # Error notices about the replaced reply go with it.
    stale = list(
        Message.objects.filter(conversation=conversation, seq__gte=last.seq).values_list(
            "pk", flat=True
        )
    )
    Message.objects.filter(pk__in=stale).delete()
    exchange = Exchange(
        remaining=remaining,
        limit=quota.daily_limit(user),
        deleted_ids=[str(pk) for pk in stale],
    )
    exchange.reply, exchange.request = _start_reply(conversation, usage)
    exchange.usage_id = usage.pk
    return exchange


def reply_checkpoint(message_id: Any, content: str) -> None:
    """Save a growing reply, so a crash or a closed tab loses at most a moment of it."""
    Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
        content=content, updated_at=timezone.now()
    )


@transaction.atomic
def reply_finish(
    *,
    message_id: Any,
    content: str,
    status: str,
    metadata: dict[str, Any],
    usage_id: int | None,
    error_text: str = "",
) -> tuple[Message | None, Message | None]:
    """Store how a reply ended; refund a failed one and explain the failure in the chat."""
    message = Message.objects.select_related("conversation__persona").filter(pk=message_id).first()
    if usage_id is not None:
        quota.settle(usage_id, status, refund=status == Message.Status.FAILED)
    if message is None:  # deleted meanwhile (the conversation was removed)
        return None, None
    message.content = content
    message.status = status
    message.metadata = {**message.metadata, **metadata}
    message.save(update_fields=["content", "status", "metadata"])
    error = None
    if error_text:
        error = message_create(
            conversation=message.conversation,
            author=None,
            role=Message.Role.SYSTEM,
            kind=Message.Kind.ERROR,
            content=error_text,
        )
    return message, error


def reply_stale_after() -> float:
    """Seconds a growing reply may go unsaved before it counts as orphaned.

    Longer than the model client can wait on one reply (every attempt timing out), so a
    reply still being written by another process is never taken for dead.
    """
    worst_wait = settings.AI_TIMEOUT_SECONDS * (settings.AI_MAX_RETRIES + 1) + 30
    return settings.REPLY_STALE_SECONDS or max(120.0, worst_wait)


def recover_interrupted(
    *, older_than_seconds: float | None = None, conversation_id: Any = None
) -> int:
    """Mark replies left 'streaming' by a process that died as failed; returns how many.

    A reply counts as orphaned when it has not been saved for `reply_stale_after()` seconds
    (a live one is saved every STREAM_SAVE_INTERVAL while tokens arrive) and no task of this
    process is writing it. Called when a page or socket opens a conversation, and by the
    `recover_replies` command.
    """
    from chat import streaming  # the reply tasks of this process

    stale_after = reply_stale_after() if older_than_seconds is None else older_than_seconds
    cutoff = timezone.now() - timezone.timedelta(seconds=stale_after)
    stale = Message.objects.filter(status=Message.Status.STREAMING, updated_at__lt=cutoff)
    if conversation_id is not None:
        stale = stale.filter(conversation_id=conversation_id)
    count = 0
    for message in stale.select_related("usage"):
        if streaming.is_running(message.pk):
            continue
        reply_finish(
            message_id=message.pk,
            content=message.content,
            status=Message.Status.FAILED,
            metadata={"error": "interrupted"},
            usage_id=getattr(getattr(message, "usage", None), "pk", None),
            error_text=_("The server restarted while the coach was answering."),
        )
        count += 1
    return count


def max_message_length() -> int:
    """The longest message a person may send."""
    return settings.MAX_MESSAGE_LENGTH
