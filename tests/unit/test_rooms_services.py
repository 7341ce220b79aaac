"""Room services and reads: notices after commit, closing sockets, unread counts in one query."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chat import conversations, events
from chat.live import delivery, presence
from chat.models import Membership, Message
from chat.rooms import selectors as room_selectors
from chat.rooms import services as rooms

pytestmark = pytest.mark.django_db


@pytest.fixture
def room(owner):
    return rooms.room_create(owner=owner, name="Small talk")


class Listener:
    """A channel in a group of the in-memory layer, as a consumer would be."""

    def __init__(self, group: str) -> None:
        self.layer = get_channel_layer()
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(group, self.channel)

    def events(self) -> list[dict]:
        got = []
        while True:
            try:
                got.append(async_to_sync(self._receive_now)())
            except TimeoutError:
                return got

    async def _receive_now(self) -> dict:
        return await asyncio.wait_for(self.layer.receive(self.channel), 0.05)


def test_create_makes_the_creator_the_owner(owner, room):
    membership = Membership.objects.get(conversation=room)
    assert room.is_room
    assert room.is_public
    assert (membership.user, membership.role) == (owner, Membership.Role.OWNER)
    assert room.invite_code


def test_join_posts_a_notice_naming_the_nickname(guest, room):
    membership, created = rooms.room_join(user=guest, room=room)
    notice = Message.objects.get(conversation=room)
    assert created
    assert notice.role == Message.Role.SYSTEM
    assert notice.kind == Message.Kind.NOTICE
    assert notice.content == "Guest Lee joined the room."
    assert membership.last_read_seq == notice.seq  # a newcomer has nothing unread


def test_joining_twice_changes_nothing(guest, room):
    rooms.room_join(user=guest, room=room)
    _membership, created = rooms.room_join(user=guest, room=room)
    assert not created
    assert Message.objects.filter(conversation=room).count() == 1


def test_join_notice_is_sent_once_committed(guest, room, django_capture_on_commit_callbacks):
    listener = Listener(events.conv_group(room.pk))
    with django_capture_on_commit_callbacks(execute=True):
        rooms.room_join(user=guest, room=room)
        assert listener.events() == []  # nothing before the commit
    (event,) = listener.events()
    notice = Message.objects.get(conversation=room)
    assert event["type"] == "chat.frame"
    assert event["seq"] == notice.seq
    assert 'data-kind="notice"' in event["html"]
    assert 'data-role="system"' in event["html"]
    assert "Guest Lee joined the room." in event["html"]


def test_a_rolled_back_join_sends_nothing(guest, room, django_capture_on_commit_callbacks):
    listener = Listener(events.conv_group(room.pk))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                rooms.room_join(user=guest, room=room)
                raise RuntimeError
        except RuntimeError:
            pass
    assert callbacks == []
    assert listener.events() == []
    assert not Membership.objects.filter(user=guest).exists()


def test_leaving_notices_the_room_and_closes_my_pages(
    guest, room, django_capture_on_commit_callbacks
):
    rooms.room_join(user=guest, room=room)
    room_listener = Listener(events.conv_group(room.pk))
    my_pages = Listener(events.user_group(guest.pk))
    with django_capture_on_commit_callbacks(execute=True):
        assert rooms.room_leave(user=guest, room=room)
    (notice,) = room_listener.events()
    assert "Guest Lee left the room." in notice["html"]
    assert my_pages.events() == [
        {"type": "access.revoked", "conversation": room.pk.hex, "code": 4403}
    ]
    assert not rooms.room_leave(user=guest, room=room)


def test_the_owner_cannot_leave(owner, room):
    with pytest.raises(rooms.OwnerCannotLeaveError):
        rooms.room_leave(user=owner, room=room)


def test_removing_a_member_closes_their_pages(guest, room, django_capture_on_commit_callbacks):
    rooms.room_join(user=guest, room=room)
    their_pages = Listener(events.user_group(guest.pk))
    with django_capture_on_commit_callbacks(execute=True):
        assert rooms.room_remove_member(room=room, user_id=guest.pk)
    assert [e["type"] for e in their_pages.events()] == ["access.revoked"]
    assert "Guest Lee was removed" in Message.objects.filter(conversation=room).last().content
    assert not rooms.room_remove_member(room=room, user_id=room.owner_id)


def test_deleting_closes_every_page(room, django_capture_on_commit_callbacks):
    listener = Listener(events.conv_group(room.pk))
    hex_id = room.pk.hex
    with django_capture_on_commit_callbacks(execute=True):
        rooms.room_delete(room=room)
    assert listener.events() == [{"type": "access.revoked", "conversation": hex_id, "code": 4404}]


def test_rename_updates_open_pages(room, django_capture_on_commit_callbacks):
    listener = Listener(events.conv_group(room.pk))
    with django_capture_on_commit_callbacks(execute=True):
        rooms.room_rename(room=room, name="Big <b>talk</b>", topic="news")
    (event,) = listener.events()
    assert 'id="room-title"' in event["html"]
    assert 'hx-swap-oob="true"' in event["html"]
    assert "Big &lt;b&gt;talk&lt;/b&gt;" in event["html"]


def test_regenerated_invite_is_new(room):
    old = room.invite_code
    assert rooms.room_regenerate_invite(room=room) != old
    assert room_selectors.room_by_invite(old) is None
    assert room_selectors.room_by_invite(room.invite_code) == room


def test_room_list_counts_members_and_unread_in_one_query(
    owner, guest, make_user, django_assert_num_queries
):
    joined = rooms.room_create(owner=owner, name="Joined")
    rooms.room_join(user=guest, room=joined)
    conversations.message_create(conversation=joined, author=owner, content="one")
    conversations.message_create(conversation=joined, author=owner, content="two")
    other = rooms.room_create(owner=owner, name="Not joined")
    conversations.message_create(conversation=other, author=owner, content="hello")
    rooms.room_create(owner=make_user(), name="Someone's private", is_public=False)
    mine_private = rooms.room_create(owner=guest, name="My private", is_public=False)

    with django_assert_num_queries(1):
        listed = {r.title: r for r in room_selectors.rooms_for(guest)}

    assert set(listed) == {"Joined", "Not joined", "My private"}
    assert (listed["Joined"].members, listed["Joined"].is_member, listed["Joined"].unread) == (
        2,
        True,
        2,
    )
    assert (listed["Not joined"].is_member, listed["Not joined"].unread) == (False, 0)
    assert listed["My private"].unread == 0
    delivery.mark_read(guest, joined, joined.messages.last().seq)
    assert room_selectors.rooms_for(guest).get(pk=joined.pk).unread == 0
    assert mine_private.pk in {r.pk for r in room_selectors.rooms_for(guest)}


def test_private_room_is_hidden_from_outsiders(guest, owner):
    private = rooms.room_create(owner=owner, name="Secret", is_public=False)
    assert conversations.conversation_for(guest, private.pk) is None
    assert conversations.conversation_for(guest, private.pk, require_member=True) is None
    rooms.room_join(user=guest, room=private)
    assert conversations.conversation_for(guest, private.pk, require_member=True) == private
    assert room_selectors.membership_of(guest, private).user == guest


def test_a_public_room_is_visible_but_the_socket_needs_membership(guest, owner):
    public = rooms.room_create(owner=owner, name="Open")
    assert conversations.conversation_for(guest, public.pk) == public
    with pytest.raises(conversations.NotAMemberError):
        conversations.conversation_for(guest, public.pk, require_member=True)


def test_a_room_open_in_a_page_has_nothing_unread(owner, guest, room):
    rooms.room_join(user=guest, room=room)
    conversations.message_create(conversation=room, author=owner, content="seen live")
    assert room_selectors.rooms_for(guest).get(pk=room.pk).unread == 1
    # The page that showed it is still open (its socket closes after the next page loaded).
    presence.connection_open(guest, room, "page-1")
    assert room_selectors.rooms_for(guest).get(pk=room.pk).unread == 0


def test_header_unread_total_is_the_list_sum_in_one_query(
    owner, guest, make_user, django_assert_num_queries
):
    """The header badge: the rooms list's unread counts summed, without building the list."""
    busy = rooms.room_create(owner=owner, name="Busy")
    quiet = rooms.room_create(owner=owner, name="Quiet")
    open_room = rooms.room_create(owner=owner, name="Open in a page")
    stranger = rooms.room_create(owner=make_user(), name="Not joined")
    for room in (busy, quiet, open_room):
        rooms.room_join(user=guest, room=room)
    for text in ("one", "two", "three"):
        conversations.message_create(conversation=busy, author=owner, content=text)
    conversations.message_create(conversation=quiet, author=owner, content="only")
    conversations.message_create(conversation=open_room, author=owner, content="seen live")
    conversations.message_create(conversation=stranger, author=stranger.owner, content="hi")
    presence.connection_open(guest, open_room, "page-1")
    conversations.message_create(conversation=guest_practice(guest), author=guest, content="x")

    with django_assert_num_queries(1):
        total = room_selectors.unread_total(guest)

    assert total == 4 == sum(r.unread for r in room_selectors.rooms_for(guest))
    delivery.mark_read(guest, busy, busy.messages.last().seq)
    assert room_selectors.unread_total(guest) == 1
    assert room_selectors.unread_total(make_user()) == 0


def test_a_page_gone_quiet_no_longer_hides_a_rooms_unread_messages(owner, guest, settings):
    """A socket row not seen within the presence timeout is a page that went away."""
    import datetime as dt

    from django.utils import timezone

    from chat.models import Connection

    room = rooms.room_create(owner=owner, name="Evening chat")
    rooms.room_join(user=guest, room=room)
    presence.connection_open(guest, room, "page-1")
    conversations.message_create(conversation=room, author=owner, content="are you there?")
    assert room_selectors.unread_total(guest) == 0  # open in a page: delivered there

    gone = timezone.now() - dt.timedelta(seconds=settings.PRESENCE_TIMEOUT_SECONDS + 1)
    Connection.objects.filter(channel_name="page-1").update(last_seen=gone)

    assert room_selectors.unread_total(guest) == 1
    assert room_selectors.rooms_for(guest).get(pk=room.pk).unread == 1


def guest_practice(user):
    """A practice conversation of the user's (its messages are never unread)."""
    from chat.models import Conversation

    return Conversation.objects.create(owner=user, kind=Conversation.Kind.PRACTICE)
