"""Checks and steps behind the conversation socket, as plain functions (sync, testable)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import OperationalError
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from chat import frames, quota, selectors, services
from chat.models import AIUsage, Connection, Conversation, Membership, Message

logger = logging.getLogger(__name__)

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


@dataclass
class SendOutcome:
    exchange: services.Exchange | None = None
    problem: str = ""


def quota_refused_text() -> str:
    """What a learner sees when no AI replies are left today."""
    return _("You have used all of today's AI replies. They reset at midnight.")


def send_message(user: User, conversation: Conversation, text: str) -> SendOutcome:
    """Check the sender's rate, store the message; in practice (or on @coach) open a reply."""
    if not within_rate(user.pk):
        return SendOutcome(problem=_("You are sending messages too fast. Wait a few seconds."))
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
    if until_seq is None:
        # A reply orphaned by a process that died ends here, notice included.
        services.recover_interrupted(conversation_id=conversation.pk)
    missed = selectors.messages_after(conversation.pk, after_seq, until_seq=until_seq)
    growing = (
        []
        if until_seq is not None
        else selectors.streaming_messages(conversation.pk, up_to_seq=after_seq)
    )
    return missed, growing


@dataclass
class Resync:
    """What a (re)connecting page is sent: everything it missed, in one database hop."""

    missed: list[Message]  # newer than what the page has, in order
    growing: list[Message]  # replies it has that are still being written
    ended: list[Message]  # replies it shows growing that ended while it was away
    last_seq: int
    quota_html: str  # the quota as it stands (a refund at shutdown, another tab)
    members: list[tuple[int, str]] | None  # who is online, in a room


def resync(user: User, conversation: Conversation, last_seq: int, streaming_ids: Any) -> Resync:
    """Catch a page up from `last_seq` and mark what it now has as read."""
    missed, growing = catch_up(conversation, last_seq)
    last_seq = max([last_seq, *(m.seq for m in missed)])
    mark_read(user, conversation, last_seq)
    fresh = User.objects.get(pk=user.pk)  # staff may have changed the limit meanwhile
    return Resync(
        missed=missed,
        growing=growing,
        ended=ended_replies(conversation, streaming_ids),
        last_seq=last_seq,
        quota_html=frames.quota(quota.remaining(fresh), quota.daily_limit(fresh), quota.reset_at()),
        members=online_members(conversation) if conversation.is_room else None,
    )


def settle_orphans(
    conversation: Conversation, last_seq: int, ids: Any
) -> tuple[list[Message], list[Message]]:
    """For a page that shows replies growing (its heartbeat): end those orphaned by a dead
    process; return the messages after `last_seq` (their notices) and the replies that ended.
    """
    services.recover_interrupted(conversation_id=conversation.pk)
    ended = ended_replies(conversation, ids)
    missed = selectors.messages_after(conversation.pk, last_seq) if ended else []
    return missed, ended


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


# --- presence: announced at most once per PRESENCE_INTERVAL per room ---------------------------
#
# Announcing the whole list on every join sent N frames of N names to N pages: a 1,000-member
# room's join storm kept a process at 100 % for minutes and its pages' queues then expired
# out of the room's group (bench/results.md). Now every join, leave and heartbeat only marks
# the room's presence as due; whoever marks it first (in any process: the marker lives in the
# shared cache) flushes it once the window since the last flush is over, reading the list
# from the database then. Changes during the window ride on that flush (trailing edge).


def _presence_key(what: str, conversation_id: Any) -> str:
    return f"presence:{what}:{services.conv_group(conversation_id)}"


def presence_changed(conversation_id: Any, *, now: float | None = None) -> float | None:
    """Note that who is online in a room may have changed.

    Returns in how many seconds the caller must flush the room's presence, or None when a
    flush is already due (this change rides on it).
    """
    interval = settings.PRESENCE_INTERVAL
    # The marker outlives its window only if the process holding it died before flushing.
    if not cache.add(_presence_key("due", conversation_id), 1, timeout=max(10, 5 * interval)):
        return None
    now = time.time() if now is None else now
    last = cache.get(_presence_key("flushed", conversation_id))
    if last is None:
        return 0.0
    return min(interval, max(0.0, last + interval - now))


def presence_flush(
    conversation: Conversation, *, now: float | None = None
) -> tuple[list[tuple[int, str]], bool]:
    """Who is online, and whether that differs from what the room was last shown."""
    interval = settings.PRESENCE_INTERVAL
    now = time.time() if now is None else now
    cache.set(_presence_key("flushed", conversation.pk), now, timeout=int(interval) + 60)
    # Released before the read: a change after this point schedules its own flush, and a
    # change before it committed before the read below, so nothing falls between the two.
    cache.delete(_presence_key("due", conversation.pk))
    members = online_members(conversation)
    fingerprint = hashlib.blake2b(json.dumps(members).encode(), digest_size=16).hexdigest()
    shown = _presence_key("shown", conversation.pk)
    changed = cache.get(shown) != fingerprint
    if changed:
        cache.set(shown, fingerprint, timeout=3600)
    return members, changed


# Flushes waiting for their window to end, kept so they are not garbage-collected mid-way.
_presence_flushes: set[asyncio.Task[None]] = set()


async def presence_note(conversation: Conversation) -> None:
    """A join, leave or heartbeat in a room: its pages see the new list within the interval."""
    delay = await database_sync_to_async(presence_changed)(conversation.pk)
    if delay is None:
        return
    if delay <= 0:
        # The window is open: announce now, inline. A joining page gets this copy before its
        # resync and drops it (the resync sends it the list): it sees the list once, not twice.
        await _presence_announce(conversation)
        return
    # Not tied to the socket that marked it: the flush must happen even if that page closes.
    task = asyncio.get_running_loop().create_task(_presence_announce(conversation, delay))
    _presence_flushes.add(task)
    task.add_done_callback(_presence_flushes.discard)


async def _presence_announce(conversation: Conversation, delay: float = 0.0) -> None:
    if delay:
        await asyncio.sleep(delay)
    try:
        members, changed = await database_sync_to_async(presence_flush)(conversation)
        if changed:
            await services.publish(
                services.conv_group(conversation.pk), services.frame_event(frames.presence(members))
            )
    except Exception:
        # The next join, leave or heartbeat in the room schedules another flush.
        logger.exception("presence flush failed for room %s", conversation.pk)
