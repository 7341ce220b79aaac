"""The room socket: who may connect, what a frame may be, fan-out, presence, typing, catch-up."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache

from chat import conversations, events, frames
from chat.coach import tasks
from chat.models import AIUsage, Message
from chat.rooms import selectors as room_selectors
from chat.rooms import services as rooms
from chat.routing import websocket_urlpatterns

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

# The consumer as project/asgi.py routes it; the user is put in the scope directly.
application = URLRouter(websocket_urlpatterns)


@pytest.fixture(autouse=True)
def room_settings(settings):
    """Fast users, an instant offline coach, and clean rate-limit and presence counters."""
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""
    settings.OFFLINE_TOKEN_DELAY = 0.0
    cache.clear()
    return settings


class Page:
    """One open room page, speaking the htmx ws extension's JSON."""

    def __init__(self, user: Any, conversation_id: Any) -> None:
        self.comm = WebsocketCommunicator(application, f"/ws/chat/{conversation_id}/")
        self.comm.scope["user"] = user
        self.seen: list[str] = []

    async def open(self, last_seq: int = 0) -> Page:
        connected, _ = await self.comm.connect()
        assert connected
        await self.send(action="resync", last_seq=last_seq)
        await self.until("presence")  # the last thing a resync sends in a room
        return self

    async def send(self, **payload: Any) -> None:
        await self.comm.send_json_to({**payload, "HEADERS": {"HX-Request": "true"}})

    async def next(self, timeout: float = 3) -> str:
        html = await self.comm.receive_from(timeout)
        self.seen.append(html)
        return html

    async def until(self, needle: str, timeout: float = 3) -> str:
        """Frames until one contains `needle`; returns that one."""
        deadline = time.monotonic() + timeout
        while True:
            html = await self.next(max(0.05, deadline - time.monotonic()))
            if needle in html:
                return html

    async def quiet(self, timeout: float = 0.2) -> bool:
        return await self.comm.receive_nothing(timeout)

    async def closed_with(self, timeout: float = 3) -> int:
        """The close code the server sent (skipping frames before it)."""
        while True:
            output = await self.comm.receive_output(timeout)
            if output["type"] == "websocket.close":
                return output["code"]

    async def close(self) -> None:
        await self.comm.disconnect()


def seqs(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-seq="(\d+)"', html)]


async def refused_with(user: Any, conversation_id: Any) -> int:
    comm = WebsocketCommunicator(application, f"/ws/chat/{conversation_id}/")
    comm.scope["user"] = user
    try:
        connected, _ = await comm.connect()
        assert connected  # accepted, then closed with a reason the page can read
        output = await comm.receive_output(3)
        assert output["type"] == "websocket.close"
        return output["code"]
    finally:
        await comm.disconnect()


# --- who may connect ----------------------------------------------------------------------------


async def test_not_signed_in_is_4401(room):
    assert await refused_with(AnonymousUser(), room.pk) == 4401


async def test_non_member_of_a_public_room_is_4403(room, make_user):
    outsider = await database_sync_to_async(make_user)()
    assert await refused_with(outsider, room.pk) == 4403


async def test_non_member_of_a_private_room_is_4404_like_no_room(owner, make_user):
    outsider = await database_sync_to_async(make_user)()
    private = await database_sync_to_async(rooms.room_create)(
        owner=owner, name="Secret", is_public=False
    )
    # Its existence is not revealed: the same code as an unknown id.
    assert await refused_with(outsider, private.pk) == 4404


async def test_unknown_room_is_4404(guest):
    assert await refused_with(guest, "6b1f4bd3-5f9e-4c4c-9a43-9b7c9d7e0f00") == 4404


async def test_foreign_origin_is_refused_at_the_handshake(room):
    from project.asgi import application as asgi_app

    path = f"/ws/chat/{room.pk}/"
    evil = WebsocketCommunicator(asgi_app, path, headers=[(b"origin", b"https://evil.example")])
    connected, _ = await evil.connect()
    assert not connected
    await evil.disconnect()
    # Our own origin passes the check (and, with no session, is told to sign in).
    ours = WebsocketCommunicator(
        asgi_app,
        path,
        headers=[(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")],
    )
    connected, _ = await ours.connect()
    assert connected
    assert (await ours.receive_output(3))["code"] == 4401
    await ours.disconnect()


# --- what a frame may be ------------------------------------------------------------------------


async def test_message_over_4000_characters_is_refused_with_a_notice(room, guest):
    page = await Page(guest, room.pk).open()
    await page.send(action="send", message="x" * 4001)
    html = await page.until('id="notice"')
    assert "too long" in html
    await page.send(action="send", message="y" * 4000)  # the limit itself is fine
    await page.until('data-role="user"')
    await page.close()
    assert await database_sync_to_async(Message.objects.filter(author=guest).count)() == 1


async def test_malformed_frame_gets_a_notice_and_the_socket_stays(room, guest):
    page = await Page(guest, room.pk).open()
    for bad in ("{not json", "[1, 2]", '{"action": "dance"}'):
        await page.comm.send_to(text_data=bad)
        assert 'id="notice"' in await page.next()
    await page.send(action="send", message="still here")
    assert "still here" in await page.until('data-role="user"')
    await page.close()


async def test_two_megabyte_frame_is_refused_without_harm(room, guest):
    page = await Page(guest, room.pk).open()
    await page.comm.send_to(text_data='{"action": "send", "message": "' + "x" * 2_000_000 + '"}')
    assert "too large" in await page.until('id="notice"')
    await page.send(action="send", message="after the big one")
    assert "after the big one" in await page.until('data-role="user"')
    await page.close()
    assert await database_sync_to_async(Message.objects.filter(author=guest).count)() == 1


async def test_too_many_messages_in_10_seconds_get_a_notice(room, guest, settings):
    settings.MESSAGES_PER_10S = 3
    while time.time() % 10 > 7:  # keep the four sends inside one 10 s window
        await asyncio.sleep(0.1)
    page = await Page(guest, room.pk).open()
    for n in range(3):
        await page.send(action="send", message=f"message {n}")
        await page.until(f"message {n}")
    await page.send(action="send", message="one too many")
    assert "too fast" in await page.until('id="notice"')
    await page.close()
    stored = await database_sync_to_async(list)(
        Message.objects.filter(author=guest).values_list("content", flat=True)
    )
    assert stored == ["message 0", "message 1", "message 2"]


# --- live room ----------------------------------------------------------------------------------


async def test_a_message_reaches_every_member_rendered_once(room, owner, guest):
    kim = await Page(owner, room.pk).open()
    lee = await Page(guest, room.pk).open()
    await lee.send(action="send", message="<b>x</b> hello")
    to_lee = await lee.until('data-role="user"')
    to_kim = await kim.until('data-role="user"')
    assert to_kim == to_lee  # the same bytes: "mine" is CSS on data-author
    assert f'data-author="{guest.pk}"' in to_kim
    assert "&lt;b&gt;x&lt;/b&gt; hello" in to_kim
    assert "<b>" not in to_kim
    await kim.close()
    await lee.close()


async def test_join_and_leave_notices_reach_open_pages(room, owner, make_user):
    kim = await Page(owner, room.pk).open()
    park = await database_sync_to_async(make_user)(nickname="Newcomer Park")
    await database_sync_to_async(rooms.room_join)(user=park, room=room)
    html = await kim.until('data-kind="notice"')
    assert 'data-role="system"' in html
    assert "Newcomer Park joined the room." in html
    await database_sync_to_async(rooms.room_leave)(user=park, room=room)
    assert "Newcomer Park left the room." in await kim.until('data-kind="notice"')
    await kim.close()


async def test_presence_lists_who_is_online(room, owner, guest):
    kim = await Page(owner, room.pk).open()
    assert f'<li data-user="{owner.pk}">Owner Kim</li>' in kim.seen[-1]
    assert "Guest Lee" not in kim.seen[-1]
    lee = await Page(guest, room.pk).open()
    both = await kim.until("Guest Lee")
    assert 'id="presence"' in both
    assert "Owner Kim" in both
    await lee.close()
    alone = await kim.until('id="presence"')
    assert "Guest Lee" not in alone
    await kim.close()


async def test_typing_is_shown_to_the_room_and_throttled(room, owner, guest):
    kim = await Page(owner, room.pk).open()
    lee = await Page(guest, room.pk).open()
    await lee.send(action="typing")
    html = await kim.until('id="typing"')
    assert "Guest Lee is typing" in html
    assert f'data-user="{guest.pk}"' in html  # Lee's own page hides it with CSS
    await lee.send(action="typing")  # within 2 s: not sent again
    assert await kim.quiet(0.3)
    await kim.close()
    await lee.close()


async def test_reconnect_gets_exactly_the_missed_messages_in_order(room, owner, guest):
    kim = await Page(owner, room.pk).open()
    lee = await Page(guest, room.pk).open()
    await kim.send(action="send", message="first words")
    last_seen = seqs(await lee.until("first words"))[-1]
    await lee.close()
    for n in range(5):
        await kim.send(action="send", message=f"missed {n}")
        await kim.until(f"missed {n}")

    lee = Page(guest, room.pk)
    await lee.comm.connect()
    await lee.send(action="resync", last_seq=last_seen)
    caught_up = await lee.until('data-role="user"')
    assert seqs(caught_up) == list(range(last_seen + 1, last_seen + 6))
    assert [f"missed {n}" for n in range(5)] == re.findall(r"missed \d", caught_up)
    assert "first words" not in caught_up
    await kim.send(action="send", message="after")
    after = await lee.until("after")
    assert seqs(after) == [last_seen + 6]  # live again, nothing repeated
    assert sum(html.count("missed 0") for html in lee.seen) == 1
    await kim.close()
    await lee.close()


async def test_a_lost_frame_is_filled_from_the_database_in_order(room, owner, guest):
    lee = await Page(guest, room.pk).open()
    # Two messages whose frames never arrive (a full channel drops them), then a third that does.
    lost = [
        await database_sync_to_async(conversations.message_create)(
            conversation=room, author=owner, content=f"lost {n}"
        )
        for n in range(2)
    ]
    third = await database_sync_to_async(conversations.message_create)(
        conversation=room, author=owner, content="arrives"
    )
    await events.publish(
        events.conv_group(room.pk),
        events.frame(frames.message_appended(third), seq=third.seq),
    )
    filled = await lee.next()
    assert seqs(filled) == [m.seq for m in lost]
    assert seqs(await lee.next()) == [third.seq]
    # The lost frames turning up late are not shown twice.
    await events.publish(
        events.conv_group(room.pk),
        events.frame(frames.message_appended(lost[1]), seq=lost[1].seq),
    )
    assert await lee.quiet()
    await lee.close()


async def test_a_removed_member_is_disconnected_and_gets_nothing_more(room, owner, guest):
    kim = await Page(owner, room.pk).open()
    lee = await Page(guest, room.pk).open()
    await database_sync_to_async(rooms.room_remove_member)(room=room, user_id=guest.pk)
    assert await lee.closed_with() == 4403
    await kim.send(action="send", message="secret plans")
    await kim.until("secret plans")
    assert not any("secret plans" in html for html in lee.seen)
    assert await refused_with(guest, room.pk) == 4403
    await kim.close()
    await lee.close()


async def test_leaving_closes_my_open_pages(room, guest):
    lee = await Page(guest, room.pk).open()
    await database_sync_to_async(rooms.room_leave)(user=guest, room=room)
    assert await lee.closed_with() == 4403
    await lee.close()


async def test_deleting_the_room_closes_every_page(room, owner, guest):
    kim = await Page(owner, room.pk).open()
    lee = await Page(guest, room.pk).open()
    await database_sync_to_async(rooms.room_delete)(room=room)
    assert await kim.closed_with() == 4404
    assert await lee.closed_with() == 4404
    await kim.close()
    await lee.close()


async def test_closing_the_page_marks_what_it_saw_as_read(room, owner, guest):
    lee = await Page(guest, room.pk).open()
    kim = await Page(owner, room.pk).open()
    await kim.send(action="send", message="read me")
    await lee.until("read me")
    await lee.close()
    listed = await database_sync_to_async(lambda: room_selectors.rooms_for(guest).get(pk=room.pk))()
    assert listed.unread == 0
    await kim.close()


# --- the coach in a room ------------------------------------------------------------------------


async def _wait_for_replies() -> None:
    for task in [job.task for job in list(tasks.JOBS.values()) if job.task]:
        await asyncio.wait_for(task, 5)


async def test_at_coach_gets_a_streamed_reply_every_member_sees(room, owner, guest):
    kim = await Page(owner, room.pk).open()
    lee = await Page(guest, room.pk).open()
    kim.seen.clear()  # each page's resync brought its own quota badge
    lee.seen.clear()
    await lee.send(action="send", message="@coach how do I greet an interviewer?")
    for page in (kim, lee):
        await page.until('data-role="assistant" data-status="streaming"')
        final = await page.until('data-status="complete"')
        assert 'data-role="assistant"' in final
    assert any('id="quota"' in html for html in lee.seen)
    assert not any('id="quota"' in html for html in kim.seen)  # the quota is Lee's alone
    await _wait_for_replies()
    used = await database_sync_to_async(
        lambda: (
            AIUsage.objects.filter(user=guest).count(),
            AIUsage.objects.filter(user=owner).count(),
        )
    )()
    assert used == (1, 0)
    await kim.close()
    await lee.close()


async def test_at_coach_with_no_quota_left_posts_the_message_with_a_notice(room, owner, guest):
    guest.daily_ai_limit = 0
    await database_sync_to_async(guest.save)()
    kim = await Page(owner, room.pk).open()
    lee = await Page(guest, room.pk).open()
    await lee.send(action="send", message="@coach are you there?")
    assert "are you there" in await kim.until('data-role="user"')
    assert "used all of today" in await lee.until(
        'id="notice" hx-swap-oob="true" class="notice notice-error"'
    )
    assert await kim.quiet(0.3)
    kinds = await database_sync_to_async(list)(
        Message.objects.filter(conversation=room).values_list("role", flat=True)
    )
    assert "assistant" not in kinds
    await kim.close()
    await lee.close()
