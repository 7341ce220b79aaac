"""Scale-out: two daphne processes sharing PostgreSQL and Redis carry one live room.

Each process gets its own port; a fresh PostgreSQL database and a Redis database
number with a unique key prefix keep runs apart. Members connect with the
`websockets` library exactly as a browser would (session cookie, Origin header).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import statistics
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import websockets

from tests.serverproc import Cluster, DaphneServer, postgres_redis_cluster

REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 11
LATENCY_ROUNDS = 20

SETUP = """
import json
from django.test import Client
from accounts.models import User
from chat.rooms import services as rooms

def cookie(user):
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value

owner = User.objects.create_user(email="kim@two.test", nickname="Owner Kim")
guest = User.objects.create_user(email="lee@two.test", nickname="Guest Lee")
room = rooms.room_create(owner=owner, name="Across processes")
print(json.dumps({"room": str(room.pk), "kim": cookie(owner), "lee": cookie(guest)}))
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Two daphne processes on one fresh PostgreSQL database and one Redis."""
    env = {"MESSAGES_PER_10S": "1000", "SOCKET_FRAMES_PER_SECOND": "1000"}
    redis_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
    with postgres_redis_cluster(name="2p", redis_url=redis_url, env=env, setup=SETUP) as made:
        yield made


# --- a member as a browser would be -------------------------------------------------------------


@dataclass
class Member:
    """One open room page: a websocket whose frames are timestamped as they arrive."""

    ws: Any
    frames: asyncio.Queue[tuple[float, str]] = field(default_factory=asyncio.Queue)
    reader: asyncio.Task[None] | None = None
    close_code: int | None = None

    @classmethod
    async def open(cls, server: DaphneServer, room: str, session: str) -> Member:
        ws = await websockets.connect(
            f"ws://127.0.0.1:{server.port}/ws/chat/{room}/",
            origin=server.url,
            additional_headers={"Cookie": f"sessionid={session}"},
        )
        member = cls(ws)
        member.reader = asyncio.create_task(member._read())
        await member.send(action="resync", last_seq=0)
        await member.until('id="presence"')
        return member

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                await self.frames.put((time.perf_counter(), frame))
        except websockets.ConnectionClosed:
            pass
        self.close_code = self.ws.close_code

    async def send(self, **payload: Any) -> float:
        """Send a frame; returns when it was sent."""
        sent = time.perf_counter()
        await self.ws.send(json.dumps({**payload, "HEADERS": {"HX-Request": "true"}}))
        return sent

    async def until(self, needle: str, timeout: float = 5) -> tuple[float, str]:
        """The first frame from now on containing `needle`, and when it arrived."""
        async with asyncio.timeout(timeout):
            while True:
                arrived, frame = await self.frames.get()
                if needle in frame:
                    return arrived, frame

    async def closed(self, timeout: float = 5) -> int | None:
        assert self.reader is not None
        await asyncio.wait_for(self.reader, timeout)
        return self.close_code

    async def close(self) -> None:
        await self.ws.close()
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.reader, 5)


def post_form(server: DaphneServer, path: str, session: str) -> int:
    """POST a plain form as the signed-in browser would (CSRF token from the room page)."""
    room_page = re.sub(r"/(join|leave)/$", "/", path)
    request = urllib.request.Request(server.url + room_page)
    request.add_header("Cookie", f"sessionid={session}")
    with urllib.request.urlopen(request, timeout=5) as response:
        set_cookie = " ".join(response.headers.get_all("Set-Cookie") or [])
    csrf = re.search(r"csrftoken=([^;]+)", set_cookie).group(1)
    body = urllib.parse.urlencode({"csrfmiddlewaretoken": csrf}).encode()
    request = urllib.request.Request(server.url + path, data=body, method="POST")
    request.add_header("Cookie", f"sessionid={session}; csrftoken={csrf}")
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status


def _report(directions: dict[str, list[float]], capsys: pytest.CaptureFixture[str]) -> None:
    every = sorted(ms for values in directions.values() for ms in values)
    lines = [
        f"cross-process delivery latency over Redis, {len(every)} messages "
        f"(send on one daphne -> received on the other):",
        f"  median {statistics.median(every):.1f} ms, "
        f"p95 {every[int(len(every) * 0.95) - 1]:.1f} ms, max {every[-1]:.1f} ms",
    ]
    lines += [
        f"  {name}: median {statistics.median(values):.1f} ms"
        for name, values in directions.items()
    ]
    with capsys.disabled():
        print("\n" + "\n".join(lines))


@pytest.mark.asyncio
async def test_members_on_two_processes_see_each_other(cluster: Cluster, capsys) -> None:
    one, two = cluster.servers
    room = cluster.data["room"]
    kim = await Member.open(one, room, cluster.data["kim"])

    # Lee joins through process two; Kim, on process one, gets the notice.
    await asyncio.to_thread(post_form, two, f"/rooms/{room}/join/", cluster.data["lee"])
    _at, notice = await kim.until('data-kind="notice"')
    assert "Guest Lee joined the room." in notice

    lee = await Member.open(two, room, cluster.data["lee"])
    _at, presence = await kim.until("Guest Lee</li>")
    assert 'id="presence"' in presence
    assert "Owner Kim" in presence

    await lee.send(action="typing")
    _at, typing = await kim.until('id="typing"')
    assert "Guest Lee is typing" in typing

    latencies: dict[str, list[float]] = {"two to one": [], "one to two": []}
    for n in range(LATENCY_ROUNDS):
        for sender, receiver, name in (
            (lee, kim, "two to one"),
            (kim, lee, "one to two"),
        ):
            text = f"ping {name} {n}"
            sent = await sender.send(action="send", message=text)
            arrived, frame = await receiver.until(text)
            assert 'data-role="user"' in frame
            latencies[name].append((arrived - sent) * 1000)
    _report(latencies, capsys)

    # Lee leaves through process one: the notice reaches Kim, Lee's page on process two closes.
    await asyncio.to_thread(post_form, one, f"/rooms/{room}/leave/", cluster.data["lee"])
    _at, notice = await kim.until("Guest Lee left the room.")
    assert 'data-role="system"' in notice
    assert await lee.closed() == 4403
    _at, presence = await kim.until('id="presence"')
    assert "Guest Lee" not in presence
    await kim.send(action="send", message="after Lee left")
    await kim.until("after Lee left")
    assert all("after Lee left" not in frame for _at, frame in list(lee.frames._queue))
    await kim.close()
    await lee.close()


@pytest.mark.asyncio
async def test_a_two_megabyte_frame_is_cut_off_by_daphne(cluster: Cluster) -> None:
    one, _two = cluster.servers
    kim = await Member.open(one, cluster.data["room"], cluster.data["kim"])
    other_tab = await Member.open(one, cluster.data["room"], cluster.data["kim"])
    huge = json.dumps({"action": "send", "message": "x" * 2_000_000})
    await other_tab.ws.send(huge)
    # daphne's --websocket-max-message-size (1 MiB by default) drops the connection before the
    # app sees the frame: 1009 (too big) when the client reads the close frame in time, else 1006.
    assert await other_tab.closed() in (1009, 1006)
    await kim.send(action="send", message="still fine")
    await kim.until("still fine")
    await kim.close()
