"""Delivery to one page: what it has seen, what it missed, and how it catches up.

`PageCursor` is the page's side of the frame envelope (`chat.events`): it drops what the
page already has, notices a gap in message numbers (a frame lost or overtaken) or in a
reply's token frames (one dropped by a full channel), and says what must be fetched or
asked for instead. It is plain state, unit-tested on its own; the consumer acts on its
decisions. The sync functions below are the database side of catching up.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from accounts.models import User
from chat import conversations, frames
from chat.coach import quota, replies
from chat.models import Conversation, Feedback, Membership, Message

RESYNC_MAX_IDS = 50
MAX_SEQ = 2**63 - 1  # the largest sequence number the database can hold


@dataclass
class Decision:
    """What to do with one frame event for this page."""

    forward: bool = True  # send the frame's HTML to the page
    catch_up_until: int | None = None  # first fetch the messages up to this seq
    catch_up_after: int = 0
    want_snapshot: bool = False  # ask the reply for a snapshot (a token frame went missing)


DROP = Decision(forward=False)


@dataclass
class PageCursor:
    """What one page has: the newest message seq, and per growing reply its last token frame."""

    last_seq: int | None = None  # None until the page said what it has (resync)
    awaiting_snapshot: set[str] = field(default_factory=set)
    stream_parts: dict[str, int] = field(default_factory=dict)
    # Replies whose final frame this page has had: a snapshot of one that comes after it
    # (asked for while it was growing, sent as it ended) must not show it growing again.
    finished: set[str] = field(default_factory=set)

    @property
    def synced(self) -> bool:
        return self.last_seq is not None

    def admit(self, event: dict[str, Any]) -> Decision:
        """Decide about a frame event from the group (or a snapshot sent to this page)."""
        if self.last_seq is None:
            # Before the page said what it has, everything comes from the database on resync.
            return DROP
        decision = Decision()
        seq = event.get("seq")
        if seq is not None:
            if seq <= self.last_seq:
                return DROP
            if seq > self.last_seq + 1:
                # A frame was lost (channel over capacity) or overtaken: fill from the database.
                decision.catch_up_after = self.last_seq
                decision.catch_up_until = seq - 1
            self.last_seq = seq
        streamed = event.get("stream")
        if streamed is not None:
            if streamed in self.awaiting_snapshot:
                return DROP
            part = event.get("part")
            if part is not None:
                last = self.stream_parts.get(streamed, 0)
                if part <= last:
                    return DROP  # already shown
                if part > last + 1:
                    # Appending after the hole would garble the reply; a snapshot repairs it.
                    self.awaiting_snapshot.add(streamed)
                    return Decision(forward=False, want_snapshot=True)
                self.stream_parts[streamed] = part
        if snapshot := event.get("snapshot"):
            if snapshot in self.finished:
                return DROP
            self.awaiting_snapshot.discard(snapshot)
            self.stream_parts[snapshot] = event.get("part") or 0  # the last part it includes
        if final := event.get("final"):
            self.awaiting_snapshot.discard(final)
            self.stream_parts.pop(final, None)
            self.finished.add(final)
        return decision

    def shown(self, messages: list[Message]) -> bool:
        """Messages sent to the page from the database; True when one is still growing
        (the page then waits for that reply's snapshot instead of its token frames)."""
        growing = False
        for message in messages:
            if self.last_seq is not None:
                self.last_seq = max(self.last_seq, message.seq)
            if message.status == Message.Status.STREAMING:
                self.awaiting_snapshot.add(str(message.pk))
                growing = True
        return growing

    def forget(self) -> None:
        """Nothing more reaches this page, even frames already queued (its access ended)."""
        self.last_seq = None


def parse_last_seq(value: object) -> int | None:
    """The `last_seq` of a resync frame, or None when it is not a usable number."""
    try:
        last = max(0, int(value or 0))  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return None
    # 10**30 would overflow the database's integer and kill the socket.
    return last if last <= MAX_SEQ else None


def catch_up(
    conversation: Conversation, after_seq: int, *, until_seq: int | None = None
) -> tuple[list[Message], list[Message]]:
    """Messages a page missed, and replies it has that are still growing."""
    if until_seq is None:
        # A reply orphaned by a process that died ends here, notice included.
        replies.recover_interrupted(conversation_id=conversation.pk)
    missed = conversations.messages_after(conversation.pk, after_seq, until_seq=until_seq)
    growing = (
        []
        if until_seq is not None
        else conversations.streaming_messages(conversation.pk, up_to_seq=after_seq)
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
    cards: list[str] = field(default_factory=list)  # feedback cards filled in meanwhile


def resync(user: User, conversation: Conversation, last_seq: int, streaming_ids: Any) -> Resync:
    """Catch a page up from `last_seq` and mark what it now has as read."""
    missed, growing = catch_up(conversation, last_seq)
    had_seq = last_seq
    last_seq = max([last_seq, *(m.seq for m in missed)])
    mark_read(user, conversation, last_seq)
    return Resync(
        cards=[] if conversation.is_room else changed_cards(conversation, had_seq),
        missed=missed,
        growing=growing,
        ended=ended_replies(conversation, streaming_ids),
        last_seq=last_seq,
        quota_html=quota.frame_for(user.pk),
        members=conversations.online_members(conversation) if conversation.is_room else None,
    )


CARD_CATCH_UP = dt.timedelta(minutes=15)
CARD_CATCH_UP_MAX = 5


def changed_cards(conversation: Conversation, up_to_seq: int) -> list[str]:
    """Cards of answers the page has that the model filled in lately (it may have missed it).

    A card's replacement is no new message, so the seq catch-up cannot carry it; the few
    cards finished in the last minutes are sent again (a page that has them sees no change).
    """
    since = timezone.now() - CARD_CATCH_UP
    recent = (
        Feedback.objects.filter(
            conversation=conversation,
            message__is_shown=True,
            message__seq__lte=up_to_seq,
            updated_at__gte=since,
        )
        .exclude(status=Feedback.Status.ANALYSED)
        .select_related("message")
        .order_by("-updated_at")[:CARD_CATCH_UP_MAX]
    )
    return [frames.feedback_card(f, f.message.content) for f in recent]


def settle_orphans(
    conversation: Conversation, last_seq: int, ids: Any
) -> tuple[list[Message], list[Message]]:
    """For a page that shows replies growing (its heartbeat): end those orphaned by a dead
    process; return the messages after `last_seq` (their notices) and the replies that ended.
    """
    replies.recover_interrupted(conversation_id=conversation.pk)
    ended = ended_replies(conversation, ids)
    missed = conversations.messages_after(conversation.pk, last_seq) if ended else []
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
        conversations.messages_qs(conversation.pk)
        .filter(pk__in=wanted)
        .exclude(status=Message.Status.STREAMING)
    )


def mark_read(user: User, conversation: Conversation, seq: int) -> None:
    """Remember the newest message this member has seen (for unread counts)."""
    Membership.objects.filter(conversation=conversation, user=user, last_read_seq__lt=seq).update(
        last_read_seq=seq, last_read=timezone.now()
    )
