"""The reply lifecycle in the database: an exchange opens a reply, checkpoints grow it,
`reply_finish` stores how it ended (refunding a failed one), and replies orphaned by a
process that died are recovered.

Functions are sync (wrap them with `database_sync_to_async` in consumers) and return what
was written; frames leave through `chat.events` only after the transaction committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from chat.coach import quota, running
from chat.coach.contract import ReplyRequest
from chat.coach.prompts import build_request
from chat.conversations import message_create, title_from_first_answer
from chat.models import Conversation, Message


class QuotaExhaustedError(Exception):
    """No AI replies are left today."""


class NothingToRegenerateError(Exception):
    """There is no finished reply to replace."""


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
    retitled: str = ""  # the new title when this answer named the conversation


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

    `require_ai` (practice): with no quota left nothing is stored and QuotaExhaustedError
    is raised, so the typed text can stay in the box. In a room the message is
    still posted and only the coach's answer is refused.
    """
    exchange = Exchange(limit=quota.daily_limit(user))
    usage = None
    if ask_ai:
        usage, exchange.remaining = quota.reserve(user)
        if usage is None:
            if require_ai:
                raise QuotaExhaustedError
            exchange.quota_refused = True
    exchange.user_message = message_create(conversation=conversation, author=user, content=text)
    if conversation.kind == Conversation.Kind.PRACTICE:
        exchange.retitled = title_from_first_answer(conversation, text)
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
        raise NothingToRegenerateError
    usage, remaining = quota.reserve(user)
    if usage is None:
        raise QuotaExhaustedError
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


def is_refunded(status: str, content: str) -> bool:
    """Whether a reply that ended so gives its credit back: failed, or stopped before a word."""
    if status == Message.Status.FAILED:
        return True
    return status == Message.Status.STOPPED and not content


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
    """Store how a reply ended; refund a failed one and explain the failure in the chat.

    A reply stopped before its first token is refunded too (the learner got nothing);
    one stopped after tokens arrived keeps counting.
    """
    message = Message.objects.select_related("conversation__persona").filter(pk=message_id).first()
    if usage_id is not None:
        quota.settle(usage_id, status, refund=is_refunded(status, content))
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
    stale_after = reply_stale_after() if older_than_seconds is None else older_than_seconds
    cutoff = timezone.now() - timezone.timedelta(seconds=stale_after)
    stale = Message.objects.filter(status=Message.Status.STREAMING, updated_at__lt=cutoff)
    if conversation_id is not None:
        stale = stale.filter(conversation_id=conversation_id)
    count = 0
    for message in stale.select_related("usage"):
        if running.is_running(message.pk):
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
