"""Live rooms: creating, joining, leaving and running them; and the reads behind room pages.

A room is a `Conversation` of kind `room`. Writes are keyword-only and atomic;
everything they publish (join/leave notices, closing sockets) goes out only
after the transaction commits.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from chat import frames, services
from chat.models import Connection, Conversation, Membership, Message, new_invite_code

# Close codes sent to sockets whose access ended (the same as a refused connect).
CLOSE_REMOVED = 4403
CLOSE_DELETED = 4404
ROOMS_PER_PAGE = 30


class OwnerCannotLeave(Exception):
    """The owner deletes a room instead of leaving it."""


# --- reads ------------------------------------------------------------------------------------


def rooms_for(user: User) -> QuerySet[Conversation]:
    """Public rooms and the user's rooms: member count, membership and unread count, one query."""
    mine = Membership.objects.filter(conversation_id=OuterRef("pk"), user=user)
    read = Subquery(mine.values("last_read_seq")[:1])
    cutoff = timezone.now() - timezone.timedelta(seconds=settings.PRESENCE_TIMEOUT_SECONDS)
    open_now = Connection.objects.filter(
        conversation_id=OuterRef("pk"), user=user, last_seen__gte=cutoff
    )
    return (
        Conversation.objects.rooms()
        .filter(Q(is_public=True) | Exists(mine))
        .annotate(
            members=Count("memberships", distinct=True),
            is_member=Exists(mine),
            unread=Case(
                # A room open in a page has had everything delivered to it. This also covers
                # leaving a room page for this list: the browser closes the socket (which then
                # records the read point) only after this list was rendered.
                When(Exists(open_now), then=Value(0)),
                # Non-members have nothing unread: Coalesce makes their "read" the newest seq.
                default=Greatest(F("last_seq") - Coalesce(read, F("last_seq")), Value(0)),
            ),
        )
        .order_by("-last_activity_at")
    )


def room_for(user: User, conversation_id: Any) -> tuple[Conversation | None, Membership | None]:
    """A room the user may look at (public, or theirs) and their membership; (None, None) else."""
    room = Conversation.objects.rooms().select_related("owner").filter(pk=conversation_id).first()
    if room is None:
        return None, None
    membership = Membership.objects.filter(conversation=room, user=user).first()
    if membership is None and not room.is_public:
        # A private room does not exist for outsiders; they enter through the invite link.
        return None, None
    return room, membership


def room_by_invite(code: str) -> Conversation | None:
    """The room an invite code opens."""
    return Conversation.objects.rooms().filter(invite_code=code).first()


def members_of(room: Conversation) -> list[Membership]:
    """The room's members with their users, owner first, then by nickname."""
    return sorted(
        Membership.objects.filter(conversation=room).select_related("user"),
        key=lambda m: (m.role != Membership.Role.OWNER, m.user.display_name.lower(), m.user_id),
    )


# --- writes -----------------------------------------------------------------------------------


def _notice(room: Conversation, text: str) -> Message:
    """Store a system notice in the room and send it to every open page once committed."""
    message = services.message_create(
        conversation=room,
        author=None,
        role=Message.Role.SYSTEM,
        kind=Message.Kind.NOTICE,
        content=text,
    )
    services.publish_on_commit(
        services.conv_group(room.pk),
        services.frame_event(frames.message_appended(message), seq=message.seq),
    )
    return message


def _end_access(room: Conversation, user_id: int) -> None:
    """Close the user's open pages on this room once the change committed."""
    services.publish_on_commit(
        services.user_group(user_id),
        {"type": "access.revoked", "conversation": room.pk.hex, "code": CLOSE_REMOVED},
    )


@transaction.atomic
def room_create(*, owner: User, name: str, topic: str = "", is_public: bool = True) -> Conversation:
    """Create a room; its creator is its owner and first member."""
    room = Conversation.objects.create(
        kind=Conversation.Kind.ROOM,
        title=name.strip(),
        topic=topic.strip(),
        is_public=is_public,
        owner=owner,
    )
    Membership.objects.create(conversation=room, user=owner, role=Membership.Role.OWNER)
    return room


@transaction.atomic
def room_join(*, user: User, room: Conversation) -> tuple[Membership, bool]:
    """Join a room (no-op for a member); returns the membership and whether it is new."""
    membership, created = Membership.objects.get_or_create(conversation=room, user=user)
    if created:
        notice = _notice(room, _("%(name)s joined the room.") % {"name": user.display_name})
        # A newcomer starts with nothing unread.
        membership.last_read_seq = notice.seq
        membership.last_read = timezone.now()
        membership.save(update_fields=["last_read_seq", "last_read"])
    return membership, created


@transaction.atomic
def room_leave(*, user: User, room: Conversation) -> bool:
    """Leave a room; False when the user was not in it. The owner cannot leave."""
    if room.owner_id == user.pk:
        raise OwnerCannotLeave
    deleted, _detail = Membership.objects.filter(conversation=room, user=user).delete()
    if not deleted:
        return False
    _notice(room, _("%(name)s left the room.") % {"name": user.display_name})
    _end_access(room, user.pk)
    return True


@transaction.atomic
def room_remove_member(*, room: Conversation, user_id: int) -> bool:
    """The owner removes someone; their open pages on the room are closed."""
    if user_id == room.owner_id:
        return False
    membership = (
        Membership.objects.select_related("user").filter(conversation=room, user_id=user_id).first()
    )
    if membership is None:
        return False
    membership.delete()
    _notice(room, _("%(name)s was removed from the room.") % {"name": membership.user.display_name})
    _end_access(room, user_id)
    return True


@transaction.atomic
def room_rename(*, room: Conversation, name: str, topic: str) -> Conversation:
    """Change a room's name and topic; open pages update their heading."""
    room.title = name.strip()
    room.topic = topic.strip()
    room.save(update_fields=["title", "topic"])
    services.publish_on_commit(services.conv_group(room.pk), services.frame_event(heading(room)))
    return room


@transaction.atomic
def room_regenerate_invite(*, room: Conversation) -> str:
    """A new invite code; the old link stops working."""
    room.invite_code = new_invite_code()
    room.save(update_fields=["invite_code"])
    return room.invite_code


@transaction.atomic
def room_delete(*, room: Conversation) -> None:
    """Delete a room and its messages; every open page on it is closed."""
    event = {"type": "access.revoked", "conversation": room.pk.hex, "code": CLOSE_DELETED}
    services.publish_on_commit(services.conv_group(room.pk), event)
    room.delete()


def heading(room: Conversation) -> str:
    """The room's name and topic as an out-of-band frame (after a rename)."""
    return render_to_string("chat/room.html#room-title", {"conversation": room, "oob": True})
