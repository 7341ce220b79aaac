"""The one road out: every event a socket or a reply task receives is sent from here.

Zulip's rule: an event that follows a database write leaves only after the transaction
commits (`publish_on_commit`), so a rolled-back write never reaches a browser. Group
names live here too, so no other module spells them.

A *frame* event carries one pre-rendered HTML fragment (`chat.frame`) and an envelope
the receiving page's cursor reads (`chat.live.delivery.PageCursor`):

* ``seq``: the message's sequence number (new messages): pages fill gaps from the database;
* ``stream`` + ``part``: the reply a token frame belongs to and its number (1, 2, …);
* ``snapshot`` + ``part``: a growing reply re-rendered whole, including parts up to ``part``;
* ``final``: the finished reply, replaced whole.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, NotRequired, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


# --- groups -----------------------------------------------------------------------------------


def _hex(conversation_id: Any) -> str:
    return getattr(conversation_id, "hex", None) or str(conversation_id).replace("-", "")


def conv_group(conversation_id: Any) -> str:
    """Group of every socket open on a conversation."""
    return f"conv.{_hex(conversation_id)}"


def ctl_group(conversation_id: Any) -> str:
    """Group of the reply tasks running for a conversation (stop / snapshot requests)."""
    return f"ctl.{_hex(conversation_id)}"


def user_group(user_id: int) -> str:
    """Group of every socket a user has open."""
    return f"user.{user_id}"


# --- event types --------------------------------------------------------------------------------


class FrameEvent(TypedDict):
    """A pre-rendered fragment for pages (handled by `chat_frame`)."""

    type: Literal["chat.frame"]
    html: str
    seq: NotRequired[int]
    stream: NotRequired[str]
    part: NotRequired[int]
    snapshot: NotRequired[str]
    final: NotRequired[str]


class AccessRevokedEvent(TypedDict):
    """A user's pages on one conversation must close (left, removed, deleted)."""

    type: Literal["access.revoked"]
    conversation: str  # hex
    code: int


class SessionEndedEvent(TypedDict):
    """Every page of a user must close (logged out, password changed, deactivated)."""

    type: Literal["session.ended"]


class ReplyStopEvent(TypedDict):
    """Stop a reply (None: every reply of the conversation), wherever it runs."""

    type: Literal["reply.stop"]
    message_id: str | None


class ReplySnapshotEvent(TypedDict):
    """Send a growing reply's full text to one page (its channel), or to the group."""

    type: Literal["reply.snapshot"]
    reply_to: str | None
    handled: list[str]  # replies that already served it (in the asking process)


Event = FrameEvent | AccessRevokedEvent | SessionEndedEvent | ReplyStopEvent | ReplySnapshotEvent


def frame(
    html: str,
    *,
    seq: int | None = None,
    stream: str | None = None,
    part: int | None = None,
    snapshot: str | None = None,
    final: str | None = None,
) -> FrameEvent:
    """A frame event; only the envelope fields given are set."""
    event: FrameEvent = {"type": "chat.frame", "html": html}
    if seq is not None:
        event["seq"] = seq
    if stream is not None:
        event["stream"] = stream
    if part is not None:
        event["part"] = part
    if snapshot is not None:
        event["snapshot"] = snapshot
    if final is not None:
        event["final"] = final
    return event


def access_revoked(conversation_id: Any, code: int) -> AccessRevokedEvent:
    """Close a user's pages on one conversation with `code`."""
    return {"type": "access.revoked", "conversation": _hex(conversation_id), "code": code}


def session_ended() -> SessionEndedEvent:
    """Close every page of a user (4401)."""
    return {"type": "session.ended"}


def reply_stop(message_id: Any | None) -> ReplyStopEvent:
    """Stop one reply, or (None) every reply of the conversation."""
    return {"type": "reply.stop", "message_id": str(message_id) if message_id else None}


def reply_snapshot(reply_to: str | None, handled: list[str] | None = None) -> ReplySnapshotEvent:
    """Ask the conversation's running replies for their full text (for one page's channel)."""
    return {"type": "reply.snapshot", "reply_to": reply_to, "handled": handled or []}


# --- sending ----------------------------------------------------------------------------------


async def publish(group: str, event: Event) -> None:
    """Send an event to a group (call only after the write it follows committed)."""
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(group, dict(event))


async def publish_safely(group: str, event: Event) -> bool:
    """Like `publish`, but a channel-layer failure (Redis down) is logged, not raised.

    For the reply pipeline: a lost frame is repaired from the database when the page
    reconnects or resyncs; the reply itself must go on.
    """
    try:
        await publish(group, event)
    except Exception as exc:
        logger.warning("channel layer: could not publish to %s (%s)", group, exc)
        return False
    return True


async def send_to(channel: str, event: Event) -> None:
    """Send an event to one page's channel (point to point: a snapshot one page asked for)."""
    layer = get_channel_layer()
    if layer is not None:
        await layer.send(channel, dict(event))


def publish_on_commit(group: str, event: Event) -> None:
    """From sync code: send an event once the current transaction commits."""
    transaction.on_commit(lambda: async_to_sync(publish)(group, event))


def publish_now(group: str, event: Event) -> None:
    """From sync code outside a transaction: send at once; a layer failure is logged."""
    try:
        async_to_sync(publish)(group, event)
    except Exception:
        logger.warning("channel layer: could not publish to %s", group, exc_info=True)
