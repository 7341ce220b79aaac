"""The reply lifecycle in the database: an exchange opens a reply, checkpoints grow it,
`reply_finish` stores how it ended (refunding a failed one), and replies orphaned by a
process that died are recovered.

Functions are sync (wrap them with `chat.dbasync.db_async` in consumers) and return what
was written; frames leave through `chat.events` only after the transaction committed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.models import User
from chat import frames
from chat.coach import feedback, quota, running
from chat.coach.contract import ReplyRequest
from chat.coach.prompts import build_request
from chat.conversations import message_create, next_seqs, store_html, title_from_first_answer
from chat.models import Conversation, Feedback, Message


class QuotaExhaustedError(Exception):
    """No AI replies are left today."""


class NothingToRegenerateError(Exception):
    """There is no finished reply to replace."""


class NoSuchAnswerError(Exception):
    """Answer again: the answer is not a shown learner answer of this conversation."""


class StillAnsweringError(Exception):
    """A reply of this practice conversation is still streaming."""


def _streaming(conversation: Conversation) -> bool:
    """Whether a reply of the conversation is still streaming (on the send path: written out,
    the queryset took longer to build than to run)."""
    connection = connections[Message.objects.db]
    quote = connection.ops.quote_name
    field = Message._meta.get_field("conversation")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {quote(Message._meta.db_table)} WHERE {quote(field.column)} = %s "
            f"AND {quote('status')} = %s LIMIT 1",
            [field.get_db_prep_value(conversation.pk, connection), Message.Status.STREAMING],
        )
        return cursor.fetchone() is not None


def _branch_from(conversation: Conversation, parent_id: Any) -> tuple[Message, list[str]]:
    """Answer again on `parent_id`: hide it and the path after it; (root, hidden ids).

    Every version points at the first answer (the root), so a question's versions are the
    root and its `versions`; the hidden path stays stored, with its feedback.
    """
    answer = (
        Message.objects.select_for_update()
        .filter(
            pk=parent_id,
            conversation=conversation,
            role=Message.Role.USER,
            kind=Message.Kind.TEXT,
            is_shown=True,
        )
        .first()
    )
    if answer is None:
        raise NoSuchAnswerError
    root = answer.parent or answer
    if not root.metadata.get("has_versions"):
        root.metadata = {**root.metadata, "has_versions": True}
        root.save(update_fields=["metadata"])
    path = Message.objects.filter(conversation=conversation, is_shown=True, seq__gte=answer.seq)
    hidden = [str(pk) for pk in path.values_list("pk", flat=True)]
    path.update(is_shown=False)
    # The hidden path is kept on its answer, to show it again (chat.practice.services).
    answer.metadata = {**answer.metadata, "path": hidden}
    answer.save(update_fields=["metadata"])
    return root, hidden


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
    # The answer's feedback that the model's part of the reply completes (practice).
    feedback_id: int | None = None
    retitled: str = ""  # the new title when this answer named the conversation
    # A practice answer whose reply opened: its feedback and title are recorded by the
    # reply task once the model request is on the wire (`answer_noted`), in this language.
    note_later: bool = False
    language: str = ""


def _answer_replied(conversation: Conversation) -> tuple[int, float | None]:
    """Count one more reply to the latest answer: (replies it had before, its spoken seconds).

    Regenerate deletes the old reply, so the count lives on the answer: each new reply to
    the same answer gets another wording from the offline coach.
    """
    answer = (
        Message.objects.select_for_update()
        .filter(
            conversation=conversation,
            role=Message.Role.USER,
            kind=Message.Kind.TEXT,
            is_shown=True,
        )
        .order_by("-seq")
        .first()
    )
    if answer is None:
        return 0, None
    before = int(answer.metadata.get("coach_replies", 0) or 0)
    answer.metadata = {**answer.metadata, "coach_replies": before + 1}
    answer.save(update_fields=["metadata"])
    speech = answer.metadata.get("speech")
    seconds = speech.get("duration_seconds") if isinstance(speech, dict) else None
    return before, float(seconds) if isinstance(seconds, int | float) else None


def _learner_language(user: User) -> str:
    # The saved choice, else the language this request or socket runs in.
    return user.language or translation.get_language() or ""


def _empty_reply(conversation: Conversation, seq: int) -> Message:
    return Message(
        conversation=conversation,
        author=None,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        content="",
        metadata={"requested_at": timezone.now().isoformat()},
        seq=seq,
    )


def _open_reply(
    exchange: Exchange,
    user: User,
    conversation: Conversation,
    *,
    left: int,
    seq: int,
    reply: Message | None = None,
) -> None:
    """The empty streaming reply, and its row in the quota ledger (inside the transaction).

    `reply`: the empty reply already inserted (with the answer, in one statement).
    """
    if reply is None:
        reply = _empty_reply(conversation, seq)
        reply.save(force_insert=True)
    exchange.reply = reply
    exchange.usage_id = quota.record(user, message=exchange.reply).pk
    exchange.remaining = left - 1


def exchange_start(
    *,
    user: User,
    conversation: Conversation,
    text: str,
    ask_ai: bool,
    require_ai: bool,
    speech_seconds: float | None = None,
    parent_id: Any = None,
    metadata: dict[str, Any] | None = None,
    one_reply_at_a_time: bool = False,
) -> Exchange:
    """Store the user's message and, if the coach is asked, reserve quota and open a reply.

    With no quota left, a practice answer is still stored with its analysis (it costs
    nothing) and no reply opens; in a room the message is posted and only the coach's
    answer is refused. `require_ai` elsewhere raises QuotaExhaustedError and stores nothing.
    `parent_id` (answer again, edit and resend) makes the answer a version of that one;
    `metadata` is the answer's own; `speech_seconds` (a dictated answer's speaking time,
    already validated) is kept in it as ``metadata["speech"]``. With `one_reply_at_a_time`
    (a practice send), a reply still streaming raises StillAnsweringError: checked under
    the quota's lock, so two tabs sending at once cannot both open a reply.

    Only what must precede the model request is written, in as few statements as the
    database allows (lock and count, both sequence numbers, two inserts, the ledger row);
    the history the model sees is read after the commit, without the locks. A practice
    answer's analysis and its first-answer title need not precede the request: when a
    reply opens, the reply task records them (`answer_noted`) with the request on the wire,
    before it publishes the answer with its card; if the process dies in between, the
    orphaned reply's recovery records them (`recover_interrupted`).
    """
    exchange = Exchange(limit=quota.daily_limit(user))
    practice = conversation.kind == Conversation.Kind.PRACTICE
    with transaction.atomic():
        left = quota.lock(user) if ask_ai else 0
        if one_reply_at_a_time and _streaming(conversation):
            raise StillAnsweringError
        answer = ask_ai and left > 0
        if ask_ai and not answer:
            # A practice answer is still stored with its analysis: that costs nothing.
            if require_ai and not practice:
                raise QuotaExhaustedError
            exchange.quota_refused = True
        root = None
        if parent_id is not None:
            if not practice:
                raise NoSuchAnswerError
            root, exchange.deleted_ids = _branch_from(conversation, parent_id)
        seqs = next_seqs(conversation.pk, 2 if answer else 1)
        speech = {"speech": {"duration_seconds": speech_seconds}} if speech_seconds else {}
        # The reply about to open is this answer's first (Regenerate counts the next ones).
        stored = {**(metadata or {}), **speech, **({"coach_replies": 1} if answer else {})}
        exchange.user_message = Message(
            conversation=conversation, author=user, content=text, seq=seqs[0], metadata=stored
        )
        reply = _empty_reply(conversation, seqs[1]) if answer else None
        # The answer and its empty reply in one INSERT (neither has HTML to store).
        Message.objects.bulk_create([m for m in (exchange.user_message, reply) if m is not None])
        if root is not None:
            exchange.user_message.parent = root
            exchange.user_message.save(update_fields=["parent"])
            # Its frame renders in the reply task (async): read its versions in this hop.
            exchange.user_message.version_ids = frames.version_ids(  # type: ignore[attr-defined]
                exchange.user_message
            )
        if answer:
            _open_reply(exchange, user, conversation, left=left, seq=seqs[1], reply=reply)
        if practice and exchange.reply is None:
            # No model request to hurry: the answer's feedback and title are stored with it.
            exchange.feedback_id, exchange.retitled = _note(exchange.user_message, conversation)
    if exchange.reply is not None:
        exchange.note_later = practice
        exchange.language = translation.get_language() or ""
        exchange.request = build_request(
            conversation,
            _learner_language(user),
            duration_seconds=feedback.spoken_seconds(exchange.user_message),
        )
    return exchange


def _note(answer: Message, conversation: Conversation) -> tuple[int, str]:
    retitled = title_from_first_answer(conversation, answer.content)
    return feedback.feedback_record(message=answer, conversation=conversation).pk, retitled


def answer_noted(
    answer: Message, language: str = "", *, if_missing: bool = False
) -> tuple[int | None, str]:
    """Record a practice answer's feedback and first-answer title: (feedback id, new title).

    Run by the reply task after its model request is on the wire (`exchange_start` left
    it); `language` is the send's. With `if_missing` (a retry, an abandoned or orphaned
    reply) an answer that has its feedback already is left alone.
    """
    conversation = answer.conversation
    if conversation.kind != Conversation.Kind.PRACTICE:
        return None, ""
    if if_missing:
        found = Feedback.objects.filter(message=answer).values_list("pk", flat=True).first()
        if found is not None:
            return found, ""
    speaking = translation.override(language) if language else contextlib.nullcontext()
    with speaking, transaction.atomic():
        return _note(answer, conversation)


def _note_orphaned(reply: Message) -> None:
    """An orphaned practice reply: its answer's feedback, if the process died before it."""
    if reply.conversation.kind != Conversation.Kind.PRACTICE:
        return
    answer = (
        Message.objects.select_related("conversation__persona")
        .filter(
            conversation_id=reply.conversation_id,
            role=Message.Role.USER,
            kind=Message.Kind.TEXT,
            seq__lt=reply.seq,
        )
        .order_by("-seq")
        .first()
    )
    if answer is not None:
        answer_noted(answer, if_missing=True)


@transaction.atomic
def reply_regenerate(*, user: User, conversation: Conversation) -> Exchange:
    """Replace the last finished reply with a new one (costs one reply of quota)."""
    # Locked first: two pages regenerating at once read the last reply one after the other
    # (else the second would delete the reply the first just opened).
    left = quota.lock(user)
    last = (
        Message.objects.filter(conversation=conversation, is_shown=True)
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
    if left <= 0:
        raise QuotaExhaustedError
    # Error notices about the replaced reply go with it.
    stale = list(
        Message.objects.filter(
            conversation=conversation, is_shown=True, seq__gte=last.seq
        ).values_list("pk", flat=True)
    )
    Message.objects.filter(pk__in=stale).delete()
    exchange = Exchange(limit=quota.daily_limit(user), deleted_ids=[str(pk) for pk in stale])
    _open_reply(exchange, user, conversation, left=left, seq=next_seqs(conversation.pk)[0])
    variant, seconds = _answer_replied(conversation)
    exchange.request = build_request(
        conversation, _learner_language(user), variant=variant, duration_seconds=seconds
    )
    pending = feedback.pending_for(conversation)
    exchange.feedback_id = pending.pk if pending is not None else None
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
    store_html(message)  # rendered once here, not by every page that shows it
    message.save(update_fields=["content", "status", "metadata", "html", "html_version"])
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
    cutoff = timezone.now() - dt.timedelta(seconds=stale_after)
    stale = Message.objects.filter(status=Message.Status.STREAMING, updated_at__lt=cutoff)
    if conversation_id is not None:
        stale = stale.filter(conversation_id=conversation_id)
    count = 0
    for message in stale.select_related("usage", "conversation"):
        if running.is_running(message.pk):
            continue
        _note_orphaned(message)
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
