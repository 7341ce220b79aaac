"""Room presence over real sockets: coalesced announcements, nothing stale, groups that heal."""

from __future__ import annotations

import asyncio
import math
import re
import time
from typing import Any

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.core.cache import cache

from chat import events, frames
from chat.live import presence
from chat.models import Connection
from chat.rooms import services as rooms
from chat.routing import websocket_urlpatterns

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

application = URLRouter(websocket_urlpatterns)
INTERVAL = 0.5
SLACK = 1.5  # a loaded test machine's scheduling delays, on top of the interval


@pytest.fixture(autouse=True)
def presence_settings(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""
    settings.PRESENCE_INTERVAL = INTERVAL
    cache.clear()
    return settings


@pytest_asyncio.fixture(autouse=True)
async def flushes_finish():
    """Let the flushes the test scheduled (closing pages schedule some) end inside it."""
    yield
    if presence._presence_flushes:
        await asyncio.wait(set(presence._presence_flushes), timeout=INTERVAL + SLACK)


def listed(html: str) -> set[int]:
    """The user ids a presence frame lists."""
    return {int(uid) for uid in re.findall(r'<li data-user="(\d+)">', html)}


class Page:
    """One open room page; frames are kept with the time they were read."""

    def __init__(self, user: Any, conversation_id: Any) -> None:
        self.user = user
        self.comm = WebsocketCommunicator(application, f"/ws/chat/{conversation_id}/")
        self.comm.scope["user"] = user
        self.seen: list[tuple[float, str]] = []

    async def connect(self) -> Page:
        connected, _ = await self.comm.connect()
        assert connected
        return self

    async def resync(self) -> Page:
        await self.send(action="resync", last_seq=0)
        await self.until('id="presence"')  # the last thing a resync sends in a room
        return self

    async def open(self) -> Page:
        await self.connect()
        return await self.resync()

    async def send(self, **payload: Any) -> None:
        await self.comm.send_json_to({**payload, "HEADERS": {"HX-Request": "true"}})

    async def until(self, needle: str, timeout: float = 3) -> str:
        """Frames until one contains `needle`; returns that one."""
        deadline = time.monotonic() + timeout
        while True:
            html = await self.comm.receive_from(max(0.05, deadline - time.monotonic()))
            self.seen.append((time.monotonic(), html))
            if needle in html:
                return html

    async def presence_until(self, wanted: set[int], timeout: float) -> float:
        """Read frames until a presence frame lists exactly `wanted`; returns when."""
        deadline = time.monotonic() + timeout
        while True:
            html = await self.until('id="presence"', max(0.05, deadline - time.monotonic()))
            if listed(html) == wanted:
                return time.monotonic()

    def drain(self) -> None:
        """Keep every frame already delivered."""
        while not self.comm.output_queue.empty():
            output = self.comm.output_queue.get_nowait()
            if output["type"] == "websocket.send":
                self.seen.append((time.monotonic(), output["text"]))

    def presence_frames(self) -> list[str]:
        return [html for _at, html in self.seen if 'id="presence"' in html]

    async def channel_name(self) -> str:
        def lookup() -> str:
            rows = Connection.objects.filter(user=self.user).values_list("channel_name", flat=True)
            (name,) = rows
            return name

        return await database_sync_to_async(lookup)()

    async def close(self) -> None:
        await self.comm.disconnect()


async def test_a_join_burst_sends_few_presence_frames_and_every_page_ends_complete(
    room, owner, make_user
):
    def make_members(n: int) -> list[Any]:
        people = []
        for i in range(n):
            person = make_user(nickname=f"Member {i:02d}")
            rooms.room_join(user=person, room=room)
            people.append(person)
        return people

    people = [owner, *await database_sync_to_async(make_members)(24)]
    everyone = {p.pk for p in people}
    started = time.monotonic()
    pages = [Page(p, room.pk) for p in people]
    for page in pages:  # one after another, as fast as they go: each join lands on open pages
        await page.open()
    burst = time.monotonic() - started

    # Every page converges on the full list within the interval after the last join.
    for page in pages:
        page.drain()
        if listed(page.presence_frames()[-1]) != everyone:
            await page.presence_until(everyone, INTERVAL + SLACK)
    # One frame per join would be 24 frames on the first page; coalesced it is one per
    # interval over the burst, a trailing one, and the page's own list on resync.
    bound = math.ceil(burst / INTERVAL) + 3
    assert bound < len(pages) - 1, f"the burst took {burst:.1f} s: too slow to tell"
    assert len(pages[0].presence_frames()) <= bound
    total = sum(len(page.presence_frames()) for page in pages)
    assert total <= len(pages) * bound
    await asyncio.gather(*(page.close() for page in pages))


async def test_a_join_just_after_an_announcement_still_goes_out(room, owner, guest):
    kim = await Page(owner, room.pk).open()
    assert listed(kim.seen[-1][1]) == {owner.pk}
    # Kim's own join was just announced: Lee's falls inside the window and rides on its end.
    opened = time.monotonic()
    lee = await Page(guest, room.pk).open()
    # Lee's own page needs no announcement: its resync lists who is online, itself included.
    assert lee.seen[-1][1] == frames.presence([(guest.pk, "Guest Lee"), (owner.pk, "Owner Kim")])
    arrived = await kim.presence_until({owner.pk, guest.pk}, INTERVAL + SLACK)
    assert arrived - opened <= INTERVAL + SLACK
    await lee.close()
    await kim.close()


async def test_a_leave_is_shown_after_the_window(room, owner, guest):
    kim = await Page(owner, room.pk).open()
    lee = await Page(guest, room.pk).open()
    await kim.presence_until({owner.pk, guest.pk}, INTERVAL + SLACK)
    left = time.monotonic()
    await lee.close()
    arrived = await kim.presence_until({owner.pk}, INTERVAL + SLACK)
    assert arrived - left <= INTERVAL + SLACK
    await kim.close()


async def test_nothing_is_announced_when_nobody_came_or_went(room, owner, guest):
    kim = await Page(owner, room.pk).open()
    lee = await Page(guest, room.pk).open()
    await kim.presence_until({owner.pk, guest.pk}, INTERVAL + SLACK)
    await lee.send(action="heartbeat")
    await kim.send(action="heartbeat")
    # The heartbeats schedule a flush; the list it reads is unchanged, so no frame.
    assert await kim.comm.receive_nothing(INTERVAL + 0.3)
    await lee.close()
    await kim.close()


async def test_a_heartbeat_rejoins_groups_the_layer_dropped(room, owner, guest):
    kim = await Page(owner, room.pk).open()
    lee = await Page(guest, room.pk).open()
    layer = get_channel_layer()
    channel = await lee.channel_name()
    # What the layer does to a channel whose queue held expired messages.
    await layer.group_discard(events.conv_group(room.pk), channel)
    await layer.group_discard(events.user_group(guest.pk), channel)

    await kim.send(action="send", message="while Lee was dropped")
    await kim.until("while Lee was dropped")
    await asyncio.sleep(0.3)
    lee.drain()
    assert not any("while Lee was dropped" in html for _at, html in lee.seen)

    await lee.send(action="heartbeat")
    # Frames are handled in order: the answer to this one means the heartbeat was handled.
    await lee.send(action="no such action")
    await lee.until("Unknown action.")
    await kim.send(action="send", message="after the heartbeat")
    await lee.until("after the heartbeat")
    # The frame it missed meanwhile is filled in from the database, before the new one.
    seen = "".join(html for _at, html in lee.seen)
    assert seen.index("while Lee was dropped") < seen.index("after the heartbeat")
    marker = '<div id="notice" hx-swap-oob="true">for Lee only</div>'
    await events.publish(events.user_group(guest.pk), events.frame(marker))
    assert await lee.until("for Lee only") == marker
    await lee.close()
    await kim.close()
