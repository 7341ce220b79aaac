"""Room pages: list, create, join (public and by invite), leave, the owner's tools, load older."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat import conversations
from chat.models import Conversation, Membership, Message
from chat.rooms import services as rooms

pytestmark = pytest.mark.django_db


@pytest.fixture
def public_room(owner):
    return rooms.room_create(owner=owner, name="Small talk", topic="Weekend plans")


@pytest.fixture
def private_room(owner):
    return rooms.room_create(owner=owner, name="Secret club", is_public=False)


def test_room_list_shows_public_and_own_rooms(client, owner, guest, public_room, private_room):
    client.force_login(guest)
    response = client.get(reverse("room-list"))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="room-list"' in html
    assert "Small talk" in html
    assert "Secret club" not in html
    assert 'data-testid="create-room"' in html
    assert 'name="name"' in html


def test_room_list_pages_30_at_a_time_with_the_same_queries(client, owner, guest):
    for n in range(65):
        rooms.room_create(owner=owner, name=f"Room {n:02d}")
    client.force_login(guest)
    counts, shown = [], []
    for page in (1, 2, 3):
        with CaptureQueriesContext(connection) as ctx:
            html = client.get(reverse("room-list"), {"page": page}).content.decode()
        counts.append(len(ctx.captured_queries))
        shown.append(html.count('data-testid="room-item"'))
    assert shown == [30, 30, 5]
    assert len(set(counts)) == 1
    assert 'data-testid="rooms-next"' in client.get(reverse("room-list")).content.decode()
    last = client.get(reverse("room-list"), {"page": 3}).content.decode()
    assert "Page 3 of 3" in last and 'data-testid="rooms-next"' not in last
    # The newest activity first; a bad page number shows a real page, not an error.
    assert "Room 64" in client.get(reverse("room-list")).content.decode()
    assert client.get(reverse("room-list"), {"page": "x"}).status_code == 200


def test_create_room_opens_it(client, owner):
    client.force_login(owner)
    response = client.post(reverse("room-create"), {"name": "Job hunters", "topic": "CVs"})
    room = Conversation.objects.rooms().get(title="Job hunters")
    assert response.status_code == 302
    assert response.url == reverse("room", args=[room.pk])
    assert room.is_public
    assert room.topic == "CVs"
    assert Membership.objects.get(conversation=room).role == Membership.Role.OWNER


def test_create_private_room(client, owner):
    client.force_login(owner)
    client.post(reverse("room-create"), {"name": "Quiet", "private": "on"})
    assert not Conversation.objects.rooms().get(title="Quiet").is_public


def test_create_room_needs_a_name(client, owner):
    client.force_login(owner)
    response = client.post(reverse("room-create"), {"name": "  ", "topic": "x"})
    assert response.status_code == 400
    assert not Conversation.objects.rooms().exists()


def test_member_page_is_live(client, owner, public_room):
    client.force_login(owner)
    html = client.get(reverse("room", args=[public_room.pk])).content.decode()
    assert f'ws-connect="/ws/chat/{public_room.pk}/"' in html
    assert "data-room=" in html
    assert 'data-testid="presence"' in html
    assert f'<li data-user="{owner.pk}">Owner Kim</li>' in html  # I am online as the page opens
    assert 'data-testid="composer"' in html
    assert 'data-testid="typing"' in html
    assert 'data-testid="join-room"' not in html
    assert 'data-testid="leave-room"' not in html  # the owner deletes instead


def test_non_member_previews_a_public_room_and_can_join(client, guest, public_room):
    client.force_login(guest)
    html = client.get(reverse("room", args=[public_room.pk])).content.decode()
    assert 'data-testid="join-room"' in html
    assert "ws-connect" not in html
    assert 'data-testid="composer"' not in html
    response = client.post(reverse("room-join", args=[public_room.pk]))
    assert response.status_code == 302
    assert Membership.objects.filter(conversation=public_room, user=guest).exists()
    notice = Message.objects.filter(conversation=public_room).last()
    assert (notice.role, notice.kind) == (Message.Role.SYSTEM, Message.Kind.NOTICE)
    assert "Guest Lee" in notice.content
    html = client.get(reverse("room", args=[public_room.pk])).content.decode()
    assert 'data-testid="leave-room"' in html
    assert 'data-role="system"' in html


def test_private_room_is_404_for_outsiders(client, guest, private_room):
    client.force_login(guest)
    assert client.get(reverse("room", args=[private_room.pk])).status_code == 404
    assert client.post(reverse("room-join", args=[private_room.pk])).status_code == 404
    assert not Membership.objects.filter(conversation=private_room, user=guest).exists()


def test_unknown_room_is_404(client, guest):
    client.force_login(guest)
    response = client.get(reverse("room", args=["6b1f4bd3-5f9e-4c4c-9a43-9b7c9d7e0f00"]))
    assert response.status_code == 404


def test_rooms_need_sign_in(client, public_room):
    assert client.get(reverse("room-list")).status_code == 302
    assert client.get(reverse("room", args=[public_room.pk])).status_code == 302


def test_invite_link_lets_an_outsider_join_a_private_room(client, guest, private_room):
    client.force_login(guest)
    url = reverse("room-invite", args=[private_room.invite_code])
    html = client.get(url).content.decode()
    assert "Secret club" in html
    assert 'data-testid="join-room"' in html
    assert not Membership.objects.filter(conversation=private_room, user=guest).exists()
    response = client.post(url)
    assert response.url == reverse("room", args=[private_room.pk])
    assert client.get(response.url).status_code == 200
    # A member following the link again goes straight in.
    assert client.get(url).status_code == 302


def test_regenerated_invite_replaces_the_old_link(client, owner, guest, private_room):
    old = private_room.invite_code
    client.force_login(owner)
    client.post(reverse("room-invite-regenerate", args=[private_room.pk]))
    private_room.refresh_from_db()
    assert private_room.invite_code != old
    client.force_login(guest)
    assert client.get(reverse("room-invite", args=[old])).status_code == 404
    assert client.get(reverse("room-invite", args=[private_room.invite_code])).status_code == 200


def test_member_sees_invite_link_of_a_private_room(client, owner, private_room):
    client.force_login(owner)
    html = client.get(reverse("room", args=[private_room.pk])).content.decode()
    assert reverse("room-invite", args=[private_room.invite_code]) in html


def test_leave_room(client, guest, public_room):
    rooms.room_join(user=guest, room=public_room)
    client.force_login(guest)
    response = client.post(reverse("room-leave", args=[public_room.pk]))
    assert response.url == reverse("room-list")
    assert not Membership.objects.filter(conversation=public_room, user=guest).exists()
    assert "Guest Lee left" in Message.objects.filter(conversation=public_room).last().content


def test_owner_cannot_leave(client, owner, public_room):
    client.force_login(owner)
    response = client.post(reverse("room-leave", args=[public_room.pk]))
    assert response.url == reverse("room", args=[public_room.pk])
    assert Membership.objects.filter(conversation=public_room, user=owner).exists()


def test_join_and_leave_are_post_only(client, guest, public_room):
    client.force_login(guest)
    assert client.get(reverse("room-join", args=[public_room.pk])).status_code == 405
    assert client.get(reverse("room-leave", args=[public_room.pk])).status_code == 405


def test_owner_renames_the_room(client, owner, public_room):
    client.force_login(owner)
    client.post(reverse("room-rename", args=[public_room.pk]), {"name": "Big talk", "topic": ""})
    public_room.refresh_from_db()
    assert (public_room.title, public_room.topic) == ("Big talk", "")


def test_owner_removes_a_member(client, owner, guest, public_room):
    rooms.room_join(user=guest, room=public_room)
    client.force_login(owner)
    client.post(reverse("room-remove-member", args=[public_room.pk, guest.pk]))
    assert not Membership.objects.filter(conversation=public_room, user=guest).exists()
    assert "removed" in Message.objects.filter(conversation=public_room).last().content


def test_only_the_owner_manages_the_room(client, owner, guest, public_room):
    rooms.room_join(user=guest, room=public_room)
    client.force_login(guest)
    for name, args in [
        ("room-rename", [public_room.pk]),
        ("room-invite-regenerate", [public_room.pk]),
        ("room-remove-member", [public_room.pk, owner.pk]),
        ("room-delete", [public_room.pk]),
    ]:
        assert client.post(reverse(name, args=args), {"name": "Mine now"}).status_code == 404
    public_room.refresh_from_db()
    assert public_room.title == "Small talk"


def test_owner_deletes_the_room(client, owner, public_room):
    client.force_login(owner)
    assert client.get(reverse("room-delete", args=[public_room.pk])).status_code == 200
    response = client.post(reverse("room-delete", args=[public_room.pk]))
    assert response.url == reverse("room-list")
    assert not Conversation.objects.filter(pk=public_room.pk).exists()


def test_conversation_url_of_a_room_redirects_to_the_room(client, owner, public_room):
    client.force_login(owner)
    response = client.get(reverse("conversation", args=[public_room.pk]))
    assert response.url == reverse("room", args=[public_room.pk])


def _fill(room, author, count):
    for n in range(count):
        conversations.message_create(conversation=room, author=author, content=f"message {n}")


def test_load_older_is_the_same_number_of_queries_for_any_page(client, owner, public_room):
    _fill(public_room, owner, 160)
    client.force_login(owner)
    url = reverse("older-messages", args=[public_room.pk])
    counts = []
    for before in (161, 111, 61):
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url, {"before": before}, HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        assert response.content.decode().count('data-testid="message"') == 50
        counts.append(len(ctx.captured_queries))
    assert len(set(counts)) == 1


def test_load_older_pages_back_50_at_a_time(client, owner, public_room, django_assert_num_queries):
    _fill(public_room, owner, 120)
    client.force_login(owner)
    url = reverse("older-messages", args=[public_room.pk])
    # session, user, room, membership, messages with authors
    with django_assert_num_queries(5):
        html = client.get(url, {"before": 71}, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-seq="70"' in html
    assert 'data-seq="21"' in html
    assert 'data-seq="20"' not in html
    assert 'data-testid="load-older"' in html
    assert "before=21" in html


def test_load_older_is_for_members_only(client, owner, guest, public_room):
    _fill(public_room, owner, 3)
    client.force_login(guest)
    url = reverse("older-messages", args=[public_room.pk])
    assert client.get(url, {"before": 3}).status_code == 404
