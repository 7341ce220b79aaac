"""Who is here: open sockets (per-user caps, heartbeats) and the online list of a room.

The online list is announced at most once per PRESENCE_INTERVAL per room. Announcing the
whole list on every join sent N frames of N names to N pages: a 1,000-member room's join
storm kept a process at 100 % for minutes and its pages' queues then expired out of the
room's group (bench/results.md). Now every join, leave and heartbeat only marks the room's
presence as due; whoever marks it first (in any process: the marker lives in the shared
cache) flushes it once the window since the last flush is over, reading the list from the
database then. Changes during the window ride on that flush (trailing edge).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from chat import conversations, events, frames
from chat.conversations import online_members
from chat.dbasync import db_async
from chat.live import delivery
from chat.models import Connection, Conversation

logger = logging.getLogger(__name__)

CLOSE_NOT_SIGNED_IN = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY_SOCKETS = 4429

__all__ = [
    "connection_close",
    "connection_open",
    "connection_seen",
    "page_close",
    "page_open",
    "online_members",
    "presence_changed",
    "presence_flush",
    "presence_note",
]


def connection_open(user: User, conversation: Conversation, channel_name: str) -> bool:
    """Record an open socket; False when the user already has too many."""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.PRESENCE_TIMEOUT_SECONDS)
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


def page_close(
    channel_name: str, user: User, conversation: Conversation, last_seq: int | None
) -> None:
    """A closed page, in one transaction: its Connection row goes, what it saw counts as read.

    One call on the database pool per closing page: a thousand pages closing at once queue
    half as many calls (and commits) as with a call for each.
    """
    with transaction.atomic():
        connection_close(channel_name)
        if last_seq:
            # What the page saw live counts as read (one write per page, not per message).
            delivery.mark_read(user, conversation, last_seq)


def _presence_key(what: str, conversation_id: Any) -> str:
    return f"presence:{what}:{events.conv_group(conversation_id)}"


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
    return min(interval, max(0.0, float(last) + interval - now))


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
    delay = await db_async(presence_changed)(conversation.pk)
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
        members, changed = await db_async(presence_flush)(conversation)
        if changed:
            await events.publish(
                events.conv_group(conversation.pk), events.frame(frames.presence(members))
            )
    except Exception:
        # The next join, leave or heartbeat in the room schedules another flush.
        logger.exception("presence flush failed for room %s", conversation.pk)


def page_open(
    user: User, conversation_id: Any, channel_name: str
) -> tuple[Conversation | None, int]:
    """Who may open a socket where: (conversation, 0), or (None, close code).

    4404 for no such conversation, someone else's practice or a private room the person
    is not in (their existence is not revealed); 4403 for a public room not joined; 4429
    when the person already has MAX_SOCKETS_PER_USER pages open.
    """
    try:
        conversation = conversations.conversation_for(user, conversation_id, require_member=True)
    except conversations.NotAMemberError:
        return None, CLOSE_FORBIDDEN
    if conversation is None:
        return None, CLOSE_NOT_FOUND
    if not connection_open(user, conversation, channel_name):
        return None, CLOSE_TOO_MANY_SOCKETS
    return conversation, 0
