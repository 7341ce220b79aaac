"""A learner's turn: the checks before a message is stored and the coach asked, as plain sync
functions (one thread hop each from the socket), and who may stop which reply.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import OperationalError
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from chat.coach import quota, replies
from chat.models import AIUsage, Conversation, Message

RATE_WINDOW_SECONDS = 10


def within_rate(user_id: int) -> bool:
    """At most MESSAGES_PER_10S messages per user per 10 s, across every socket and process.

    Sync on purpose: it runs in the same thread hop as `send_message` (each `a*` cache call
    was a hop of its own, ~1.4 ms of the send → model request path).
    """
    window = int(timezone.now().timestamp()) // RATE_WINDOW_SECONDS
    key = f"rate:{user_id}:{window}"
    added = cache.add(key, 1, timeout=RATE_WINDOW_SECONDS * 2)
    count = 1 if added else cache.incr(key)
    return count <= settings.MESSAGES_PER_10S


def clean_text(value: object) -> tuple[str, str]:
    """The message text of a send, or a problem to show."""
    if not isinstance(value, str):
        return "", _("A message must be text.")
    text = value.replace("\r\n", "\n").strip()
    if not text:
        return "", _("Type a message first.")
    limit = settings.MAX_MESSAGE_LENGTH
    if len(text) > limit:
        return "", _("That message is too long (%(n)d characters; at most %(max)d).") % {
            "n": len(text),
            "max": limit,
        }
    return text, ""


def clean_speech_seconds(value: object) -> float | None:
    """A dictated answer's speaking time from the send frame: positive, bounded, else None."""
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not 0 < seconds <= settings.DICTATION_MAX_SECONDS:  # also refuses NaN
        return None
    return round(seconds, 2)


@dataclass
class SendOutcome:
    """What a send or regenerate wrote, or the problem to show (nothing was stored then)."""

    exchange: replies.Exchange | None = None
    problem: str = ""
    # What the problem is about ("quota", "streaming"): the page clears it when that ends.
    cause: str = ""


def quota_refused_text() -> str:
    """What a learner sees when no AI replies are left today (the reset moment follows it)."""
    return _("You have used all of today's AI replies. They come back at 00:00 %(zone)s:") % {
        "zone": quota.reset_at().strftime("%Z")
    }


def send_message(
    user: User,
    conversation: Conversation,
    text: str,
    speech_seconds: float | None = None,
    *,
    parent_id: object = None,
) -> SendOutcome:
    """Check the sender's rate, store the message; in practice (or on @coach) open a reply.

    `speech_seconds`: how long the learner spoke a dictated answer (from `clean_speech_seconds`).
    With `parent_id` (answer again, or edit and resend), the new answer is a version of
    that one: it and the path after it are hidden, both kept with their feedback.
    """
    if not within_rate(user.pk):
        return SendOutcome(problem=_("You are sending messages too fast. Wait a few seconds."))
    practice = conversation.kind == Conversation.Kind.PRACTICE
    ask_ai = practice or "@coach" in text.lower()
    try:
        exchange = replies.exchange_start(
            user=user,
            conversation=conversation,
            text=text,
            ask_ai=ask_ai,
            require_ai=practice,
            speech_seconds=speech_seconds,
            parent_id=parent_id,
            one_reply_at_a_time=practice,
        )
    except replies.StillAnsweringError:
        return SendOutcome(
            problem=_("The coach is still answering. Wait, or press Stop."), cause="streaming"
        )
    except replies.NoSuchAnswerError:
        return SendOutcome(problem=_("That answer cannot be answered again."))
    except replies.QuotaExhaustedError:
        return SendOutcome(problem=quota_refused_text(), cause="quota")
    except OperationalError:
        # SQLite stayed locked past its busy timeout: nothing was stored, the text stays.
        return SendOutcome(problem=_("The server is busy. Your message was not sent; try again."))
    return SendOutcome(exchange=exchange)


def regenerate(user: User, conversation: Conversation) -> SendOutcome:
    """Replace the last reply of a practice conversation."""
    if conversation.kind != Conversation.Kind.PRACTICE:
        return SendOutcome(problem=_("Only practice replies can be regenerated."))
    try:
        return SendOutcome(exchange=replies.reply_regenerate(user=user, conversation=conversation))
    except replies.NothingToRegenerateError:
        return SendOutcome(problem=_("There is no finished reply to regenerate."))
    except replies.QuotaExhaustedError:
        return SendOutcome(problem=quota_refused_text(), cause="quota")


def stoppable_replies(user: User, conversation: Conversation) -> list[str]:
    """Replies streaming now that this user may stop (their own, or any in their own room)."""
    streaming = Message.objects.filter(conversation=conversation, status=Message.Status.STREAMING)
    if conversation.owner_id != user.pk:
        mine = AIUsage.objects.filter(user=user).values("message_id")
        streaming = streaming.filter(pk__in=mine)
    return [str(pk) for pk in streaming.values_list("pk", flat=True)]
