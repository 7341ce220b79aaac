"""Removing someone from a room keeps them out until the owner lets them back in."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat.models import Membership, RoomBan
from chat.rooms import selectors
from chat.rooms import services as rooms

pytestmark = pytest.mark.django_db


@pytest.fixture
def public_room(owner):
    return rooms.room_create(owner=owner, name="Small talk")


def test_a_removed_member_cannot_rejoin_a_public_room(owner, guest, public_room):
    rooms.room_join(user=guest, room=public_room)

    rooms.room_remove_member(room=public_room, user_id=guest.pk)

    assert RoomBan.objects.filter(room=public_room, user=guest).exists()
    with pytest.raises(rooms.BannedFromRoomError):
        rooms.room_join(user=guest, room=public_room)
    assert not Membership.objects.filter(conversation=public_room, user=guest).exists()


@pytest.mark.parametrize("public", [True, False], ids=["public-join-button", "private-invite-link"])
def test_rejoining_is_refused_and_said(client, owner, guest, public):
    room = rooms.room_create(owner=owner, name="Interview club", is_public=public)
    rooms.room_join(user=guest, room=room)
    rooms.room_remove_member(room=room, user_id=guest.pk)
    client.force_login(guest)
    # A public room's page has a Join button; a private room is joined by its invite link.
    url = (
        reverse("room-join", args=[room.pk])
        if public
        else reverse("room-invite", args=[room.invite_code])
    )

    response = client.post(url, follow=True)

    assert "removed you from this room" in response.content.decode()
    assert not Membership.objects.filter(conversation=room, user=guest).exists()


def test_the_owner_lifts_a_ban_and_the_person_can_join_again(client, owner, guest, public_room):
    rooms.room_join(user=guest, room=public_room)
    rooms.room_remove_member(room=public_room, user_id=guest.pk)
    client.force_login(owner)
    page = client.get(reverse("room", args=[public_room.pk])).content.decode()
    assert 'data-testid="lift-ban"' in page and 'data-testid="confirm-remove"' not in page

    client.post(reverse("room-lift-ban", args=[public_room.pk, guest.pk]))

    assert not RoomBan.objects.filter(room=public_room).exists()
    membership, created = rooms.room_join(user=guest, room=public_room)
    assert created


def test_only_the_owner_lifts_a_ban(client, owner, guest, make_user, public_room):
    rooms.room_join(user=guest, room=public_room)
    rooms.room_remove_member(room=public_room, user_id=guest.pk)
    other = make_user(nickname="Other")
    rooms.room_join(user=other, room=public_room)
    client.force_login(other)

    response = client.post(reverse("room-lift-ban", args=[public_room.pk, guest.pk]))

    assert response.status_code == 404
    assert RoomBan.objects.filter(room=public_room, user=guest).exists()


def test_the_header_counts_unread_messages_across_rooms(owner, guest, public_room):
    from chat.conversations import message_create

    rooms.room_join(user=guest, room=public_room)
    for text in ("one", "two"):
        message_create(conversation=public_room, author=owner, content=text)

    assert selectors.unread_total(guest) == 2


def test_a_private_rooms_link_still_lets_everyone_else_in_and_the_ban_can_be_lifted(
    client, owner, guest, make_user
):
    room = rooms.room_create(owner=owner, name="Interview club", is_public=False)
    rooms.room_join(user=guest, room=room)
    rooms.room_remove_member(room=room, user_id=guest.pk)

    other = make_user()
    client.force_login(other)
    client.post(reverse("room-invite", args=[room.invite_code]))

    assert Membership.objects.filter(conversation=room, user=other).exists()
    rooms.room_lift_ban(room=room, user_id=guest.pk)
    rooms.room_join(user=guest, room=room)
    assert Membership.objects.filter(conversation=room, user=guest).exists()
