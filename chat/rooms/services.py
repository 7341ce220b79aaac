"""Writes of rooms: creating, joining, leaving and running them.

A room is a `Conversation` of kind `room`. Writes are keyword-only and atomic;
everything they publish (join/leave notices, closing sockets) goes out only
after the transaction commits.
"""

from __future__ import annotations

from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from chat import events, frames
from chat.conversations import message_create
from chat.models import Conversation, Membership, Message, RoomBan, new_invite_code

# Close codes sent to sockets whose access ended (the same as a refused connect).
CLOSE_REMOVED = 4403
CLOSE_DELETED = 4404


class BannedFromRoomError(Exception):
    """The owner removed this person from the room: they cannot join it again."""


class OwnerCannotLeaveError(Exception):
    """The owner deletes a room instead of leaving it."""


# --- writes -----------------------------------------------------------------------------------


def _notice(room: Conversation, text: str) -> Message:
    """Store a system notice in the room and send it to every open page once committed."""
    message = message_create(
        conversation=room,
        author=None,
        role=Message.Role.SYSTEM,
        kind=Message.Kind.NOTICE,
        content=text,
    )
    events.publish_on_commit(
        events.conv_group(room.pk), events.frame(frames.message_appended(message), seq=message.seq)
    )
    return message


def _end_access(room: Conversation, user_id: int) -> None:
    """Close the user's open pages on this room once the change committed."""
    events.publish_on_commit(
        events.user_group(user_id), events.access_revoked(room.pk, CLOSE_REMOVED)
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
    """Join a room (no-op for a member); returns the membership and whether it is new.

    Someone the owner removed stays out (BannedFromRoomError) until the owner lifts it.
    """
    if RoomBan.objects.filter(room=room, user=user).exists():
        raise BannedFromRoomError
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
        raise OwnerCannotLeaveError
    deleted, _detail = Membership.objects.filter(conversation=room, user=user).delete()
    if not deleted:
        return False
    _notice(room, _("%(name)s left the room.") % {"name": user.display_name})
    _end_access(room, user.pk)
    return True


@transaction.atomic
def room_remove_member(*, room: Conversation, user_id: int) -> bool:
    """The owner removes someone; their open pages on the room are closed.

    Removal is a ban, from any room: a public room anyone may join, and a private room's
    invite link still works for everyone else who has it (a new link would shut them out
    too). The owner can lift it.
    """
    if user_id == room.owner_id:
        return False
    membership = (
        Membership.objects.select_related("user").filter(conversation=room, user_id=user_id).first()
    )
    if membership is None:
        return False
    membership.delete()
    RoomBan.objects.get_or_create(room=room, user_id=user_id)
    _notice(room, _("%(name)s was removed from the room.") % {"name": membership.user.display_name})
    _end_access(room, user_id)
    return True


@transaction.atomic
def room_lift_ban(*, room: Conversation, user_id: int) -> bool:
    """The owner lets someone they removed join again; False when there was no ban."""
    deleted, _detail = RoomBan.objects.filter(room=room, user_id=user_id).delete()
    return bool(deleted)


@transaction.atomic
def room_rename(*, room: Conversation, name: str, topic: str) -> Conversation:
    """Change a room's name and topic; open pages update their heading."""
    room.title = name.strip()
    room.topic = topic.strip()
    room.save(update_fields=["title", "topic"])
    events.publish_on_commit(events.conv_group(room.pk), events.frame(heading(room)))
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
    events.publish_on_commit(
        events.conv_group(room.pk), events.access_revoked(room.pk, CLOSE_DELETED)
    )
    room.delete()


def heading(room: Conversation) -> str:
    """The room's name and topic as an out-of-band frame (after a rename)."""
    return render_to_string("chat/rooms/room.html#room-title", {"conversation": room, "oob": True})
