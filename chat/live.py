"""Checks and steps behind the conversation socket, as plain functions (sync, testable)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import OperationalError
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from chat import selectors, services
from chat.models import AIUsage, Connection, Conversation, Membership, Message

RATE_WINDOW_SECONDS = 10
RESYNC_MAX_IDS = 50


@dataclass
class Access:
    """Who may open a socket on which conversation."""

    conversation: Conversation | None = None
    close_code: int = 0
    coach_name: str = ""


def check_access(user: User, conversation_id: Any) -> Access:
    """4404 for no such conversation (or someone else's practice), 4403 for a non-member."""
    conversation = selectors.conversation_for(user, conversation_id)
    if conversation is None:
        return Access(close_code=4404)
    if not selectors.is_member(user, conversation):
        return Access(close_code=4403)
    coach = conversation.persona.name if conversation.persona else _("AI coach")
    return Access(conversation=conversation, coach_name=coach)


def parse_frame(text_data: str | None, bytes_data: bytes | None) -> tuple[dict[str, Any], str]:
    """Decode a browser frame; returns (payload, problem) — problem is a notice for the user."""
    if bytes_data is not None and text_data is None:
        return {}, _("Binary frames are not supported.")
    if text_data is None:
        return {}, _("Empty frame.")
    if len(text_data) > settings.MAX_FRAME_BYTES:
        return {}, _("That frame is too large.")
    try:
        payload = json.loads(text_data)
    except ValueError:
        return {}, _("That frame was not valid JSON.")
    if not isinstance(payload, dict):
        return {}, _("That frame was not a JSON object.")
    # htmx adds the request headers; identity never comes from the frame.
    payload.pop("HEADERS", None)
    for key in ("user", "user_id", "author", "author_id"):
        payload.pop(key, None)
    return payload, ""


def clean_text(value: Any) -> tuple[str, str]:
    """The message text, or a problem to show."""
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


async def within_rate(user_id: int) -> bool:
    """At most MESSAGES_PER_10S messages per user per 10 s, across every socket and process."""
    window = int(timezone.now().timestamp()) // RATE_WINDOW_SECONDS
    key = f"rate:{user_id}:{window}"
    added = await cache.aadd(key, 1, timeout=RATE_WINDOW_SECONDS * 2)
    count = 1 if added else await cache.aincr(key)
    return count <= settings.MESSAGES_PER_10S


@dataclass
class SendOutcome:
    exchange: services.Exchange | None = None
    problem: str = ""


def quota_refused_text() -> str:
    """What a learner sees when no AI replies are left today."""
    return _("You have used all of today's AI replies. They reset at midnight.")


def send_message(user: User, conversation: Conversation, text: str) -> SendOutcome:
    """Store a message; in practice (or on @coach in a room) open the coach's reply."""
    practice = conversation.kind == Conversation.Kind.PRACTICE
    ask_ai = practice or "@coach" in text.lower()
    if (
        practice
        and Message.objects.filter(
            conversation=conversation, status=Message.Status.STREAMING
        ).exists()
    ):
        return SendOutcome(problem=_("The coach is still answering. Wait, or press Stop."))
    try:
        exchange = services.exchange_start(
            user=user, conversation=conversation, text=text, ask_ai=ask_ai, require_ai=practice
        )
    except services.QuotaExhausted:
        return SendOutcome(problem=quota_refused_text())
    except OperationalError:
        # SQLite stayed locked past its busy timeout: nothing was stored, the text stays.
        return SendOutcome(problem=_("The server is busy. Your message was not sent; try again."))
    return SendOutcome(exchange=exchange)


def regenerate(user: User, conversation: Conversation) -> SendOutcome:
    """Replace the last reply of a practice conversation."""
    if conversation.kind != Conversation.Kind.PRACTICE:
        return SendOutcome(problem=_("Only practice replies can be regenerated."))
    try:
        return SendOutcome(exchange=services.reply_regenerate(user=user, conversation=conversation))
    except services.NothingToRegenerate:
        return SendOutcome(problem=_("There is no finished reply to regenerate."))
    except services.QuotaExhausted:
        return SendOutcome(problem=quota_refused_text())


def stoppable_replies(user: User, conversation: Conversation) -> list[str]:
    """Replies streaming now that this user may stop (their own, or any in their own room)."""
    streaming = Message.objects.filter(conversation=conversation, status=Message.Status.STREAMING)
    if conversation.owner_id != user.pk:
        mine = AIUsage.objects.filter(user=user).values("message_id")
        streaming = streaming.filter(pk__in=mine)
    return [str(pk) for pk in streaming.values_list("pk", flat=True)]


def catch_up(
    conversation: Conversation, after_seq: int, *, until_seq: int | None = None
) -> tuple[list[Message], list[Message]]:
    """Messages a page missed, and replies it has that are still growing."""
    missed = selectors.messages_after(conversation.pk, after_seq, until_seq=until_seq)
    growing = (
        []
        if until_seq is not None
        else selectors.streaming_messages(conversation.pk, up_to_seq=after_seq)
    )
    return missed, growing


def ended_replies(conversation: Conversation, ids: Any) -> list[Message]:
    """Of the replies a reconnecting page still shows as growing, those that ended meanwhile.

    A page that was away when a reply's final frame went out would otherwise show it
    growing for ever: its seq is not newer than what the page has.
    """
    if not isinstance(ids, list):
        return []
    wanted = []
    for value in ids[:RESYNC_MAX_IDS]:
        try:
            wanted.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    if not wanted:
        return []
    return list(
        selectors.messages_qs(conversation.pk)
        .filter(pk__in=wanted)
        .exclude(status=Message.Status.STREAMING)
    )


def mark_read(user: User, conversation: Conversation, seq: int) -> None:
    """Remember the newest message this member has seen (for unread counts)."""
    Membership.objects.filter(conversation=conversation, user=user, last_read_seq__lt=seq).update(
        last_read_seq=seq, last_read=timezone.now()
    )


def connection_open(user: User, conversation: Conversation, channel_name: str) -> bool:
    """Record an open socket; False when the user already has too many."""
    cutoff = timezone.now() - timezone.timedelta(seconds=settings.PRESENCE_TIMEOUT_SECONDS)
    open_now = Connection.objects.filter(user=user, last_seen__gte=cutoff).count()
    if open_now >= settings.MAX_SOCKETS_PER_USER:
        return False
    Connection.objects.create(user=user, conversation=conversation, channel_name=channel_name)
    return True


def connection_seen(channel_name: str) -> None:
    """A heartbeat: the page is still there."""
    Connection.objects.filter(channel_name=channel_name).update(last_seen=timezone.now())


def connection_close(channel_name: str) -> None:
    """Forget a closed socket."""
    Connection.objects.filter(channel_name=channel_name).delete()


def online_members(conversation: Conversation) -> list[tuple[int, str]]:
    """(user id, nickname) of members with a live socket, by nickname."""
    cutoff = timezone.now() - timezone.timedelta(seconds=settings.PRESENCE_TIMEOUT_SECONDS)
    rows = (
        Connection.objects.filter(conversation=conversation, last_seen__gte=cutoff)
        .values_list("user_id", "user__nickname")
        .distinct()
    )
    return sorted(set(rows), key=lambda row: (row[1].lower(), row[0]))


def presence_update(
    conversation: Conversation, *, force: bool
) -> tuple[list[tuple[int, str]], bool]:
    """The online members, and whether that changed since it was last announced."""
    members = online_members(conversation)
    key = f"presence:{conversation.pk.hex}"
    fingerprint = ",".join(str(uid) for uid, _name in members)
    changed = force or cache.get(key) != fingerprint
    if changed:
        cache.set(key, fingerprint, timeout=3600)
    return members, changed
