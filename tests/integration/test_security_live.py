"""Hostile users and dying sockets (issue #15): the whole Origin, sockets that outlive their
rights, frames that crash a handler, floods from one socket, room spam, and private rooms
that must look like no room. Results go to var/reliability.md (tests/reliability_report.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from accounts.models import User
from chat.models import Conversation, Membership
from chat.rooms import selectors as room_selectors
from project.asgi import application
from tests import reliability_report as report
from tests.conftest import PASSWORD
from tests.fakes.fake_openai import Script
from tests.reliability_report import (
    InProc,
    Person,
    Remote,
    bystander_ok,
    connections_of,
    converse,
    handshake,
    open_page,
    session_cookie,
    stored_messages,
)
from tests.serverproc import DaphneServer, database_env

pytest_plugins = ["tests.reliability_report"]
pytestmark = [pytest.mark.django_db(transaction=True)]

db = sync_to_async


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def ai(settings: Any, fake_openai: Any) -> Any:
    settings.OPENAI_BASE_URL = fake_openai.base_url
    settings.OPENAI_API_KEY = "test-key"
    settings.AI_TIMEOUT_SECONDS = 5.0
    settings.AI_MAX_RETRIES = 1
    settings.AI_DAILY_LIMIT = 50
    fake_openai.script = Script(tokens=6)
    fake_openai.clear()
    cache.clear()
    yield fake_openai
    fake_openai.script = Script()


@pytest_asyncio.fixture
async def bystander(ai: Any, bob: Person) -> Any:
    """Bob's practice page, open for the whole test."""
    sock = await open_page(bob, "bob")
    await sock.quiet(0.1)
    yield sock
    await sock.close()


def private_room(owner: Any, *members: Any) -> Conversation:
    room = Conversation.objects.create(
        kind=Conversation.Kind.ROOM, title="Private", owner=owner, is_public=False
    )
    Membership.objects.create(conversation=room, user=owner, role=Membership.Role.OWNER)
    for member in members:
        Membership.objects.create(conversation=room, user=member, role=Membership.Role.MEMBER)
    return room


def headers(cookie: str, origin: str, host: str, *extra: tuple[bytes, bytes]) -> list[Any]:
    name = django_settings.SESSION_COOKIE_NAME
    return [
        (b"cookie", f"{name}={cookie}".encode()),
        (b"origin", origin.encode()),
        (b"host", host.encode()),
        *extra,
    ]


# --------------------------------------------------------------------------- H7a origin


@pytest.mark.asyncio
async def test_h7a_origin_must_match_scheme_host_and_port(
    settings: Any, alice: Person, bob: Person, bystander: InProc
) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://practalk.example"]
    site = "127.0.0.1:8000"
    proxied = (b"x-forwarded-proto", b"https")
    attempts = {
        "https://127.0.0.1:8823": headers(alice.cookie, "https://127.0.0.1:8823", site),
        "http://127.0.0.1:8822": headers(alice.cookie, "http://127.0.0.1:8822", site),
        "https://127.0.0.1:8000 (site is http)": headers(
            alice.cookie, "https://127.0.0.1:8000", site
        ),
        "http://127.0.0.1 (no port)": headers(alice.cookie, "http://127.0.0.1", site),
        "null": headers(alice.cookie, "null", site),
        "http://127.0.0.1:8000 behind TLS proxy": headers(
            alice.cookie, "http://127.0.0.1:8000", site, proxied
        ),
    }
    allowed = {
        "http://127.0.0.1:8000 (own)": headers(alice.cookie, "http://127.0.0.1:8000", site),
        "https://127.0.0.1:8000 behind TLS proxy": headers(
            alice.cookie, "https://127.0.0.1:8000", site, proxied
        ),
        "https://practalk.example (CSRF_TRUSTED_ORIGINS)": headers(
            alice.cookie, "https://practalk.example", site
        ),
    }
    with report.case(
        "H7a",
        "site http://127.0.0.1:8000; Origins https://127.0.0.1:8823, http://127.0.0.1:8822, "
        "https on the site's port, no port, null, http behind the TLS proxy; with a valid cookie",
    ) as row:
        refused = {
            name: (await handshake(alice.path, h)).close_code for name, h in attempts.items()
        }
        accepted = {}
        for name, hdrs in allowed.items():
            sock = await handshake(alice.path, hdrs)
            accepted[name] = sock.close_code
            await sock.close()
        row.set(
            result=f"refused at the handshake: {', '.join(refused)} (close {set(refused.values())}"
            f"); accepted: {', '.join(accepted)}; nothing registered for the refused",
            sent=0,
        )
        # Refused before the consumer ran: channels' denier closes the handshake (HTTP 403).
        assert all(code not in (None, 4401, 4403, 4404) for code in refused.values()), refused
        assert all(code is None for code in accepted.values()), accepted
        row.bystander = await bystander_ok(bystander, bob, [alice])


@pytest.mark.asyncio
async def test_h7a_origin_on_the_real_server(ai: Any, alice: Person) -> None:
    """daphne answers another port's Origin with HTTP 403 and the server's own with a socket."""
    server = DaphneServer(_server_env(ai))
    await asyncio.to_thread(server.start)
    try:
        url = f"ws://127.0.0.1:{server.port}{alice.path}"
        other_port = await Remote.open(
            url, cookie=alice.cookie_header, origin=f"http://127.0.0.1:{server.port + 1}"
        )
        other_scheme = await Remote.open(
            url, cookie=alice.cookie_header, origin=f"https://127.0.0.1:{server.port}"
        )
        ok = await Remote.open(url, cookie=alice.cookie_header, origin=server.url)
        try:
            assert other_port.close_code == -403 and other_scheme.close_code == -403
            assert ok.close_code is None
        finally:
            for sock in (other_port, other_scheme, ok):
                await sock.close()
    finally:
        await asyncio.to_thread(server.stop)
    report.ROWS["H7a"].result += "; daphne: HTTP 403 for another port or scheme, socket for its own"


# --------------------------------------------------------------------------- H7b–H7d rights


def _other_browser(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.asyncio
async def test_h7b_password_change_closes_other_sockets(
    alice: Person, bob: Person, bystander: InProc
) -> None:
    with report.case(
        "H7b",
        "Alice changes her password in another browser (POST /accounts/password/change/) "
        "while 2 pages are open in the first",
    ) as row:
        page = await open_page(alice, "alice")
        other = await open_page(alice, "alice-2")
        await page.quiet(0.1)
        browser = await db(_other_browser)(alice.user)
        response = await db(browser.post)(
            "/accounts/password/change/",
            {
                "oldpassword": PASSWORD,
                "password1": "N3w-Horse-4242!",
                "password2": "N3w-Horse-4242!",
            },
        )
        codes = (await page.wait_closed(3), await other.wait_closed(3))
        again = await handshake(alice.path, alice.headers)
        await page.send({"action": "send", "message": "posted after the password change?"})
        await asyncio.sleep(0.3)  # time for a handler that should not run to store it
        stored = [m for m in await db(stored_messages)(alice.conv.pk) if m.role == "user"]
        row.set(
            result=f"change answered {response.status_code}; both pages closed {codes[0]}/"
            f"{codes[1]}; the old session's cookie opens {again.close_code}; nothing posted",
            sent=1,
            stored=len(stored),
        )
        assert response.status_code == 302
        assert codes == (4401, 4401) and again.close_code == 4401
        assert not stored
        row.bystander = await bystander_ok(bystander, bob, [alice])


def _deactivate(user: Any) -> None:
    fresh = User.objects.get(pk=user.pk)
    fresh.is_active = False
    fresh.save()


def _new_role(user: Any) -> None:
    fresh = User.objects.get(pk=user.pk)
    fresh.role = User.Role.COACH
    fresh.save()


def _delete(user: Any) -> None:
    User.objects.get(pk=user.pk).delete()


@pytest.mark.asyncio
async def test_h7c_deactivation_deletion_and_role_change_close_sockets(
    person: Any, bob: Person, bystander: InProc
) -> None:
    with report.case(
        "H7c",
        "staff deactivate Dora, delete Dan, make Cleo a coach (saved through the model, as the "
        "admin does), each with a page open",
    ) as row:
        codes = {}
        for name, change in (
            ("deactivated", _deactivate),
            ("deleted", _delete),
            ("new role", _new_role),
        ):
            someone = await db(person)(f"Someone {name}")
            page = await open_page(someone, name)
            await page.quiet(0.1)
            await db(change)(someone.user)
            codes[name] = await page.wait_closed(3)
            if name == "deactivated":
                await page.send({"action": "send", "message": "still posting?"})
                await asyncio.sleep(0.3)  # time for a handler that should not run to store it
                stored = [m for m in await db(stored_messages)(someone.conv.pk) if m.role == "user"]
                assert not stored
        row.set(result=f"pages closed: {codes}", sent=1, stored=0)
        assert codes == {"deactivated": 4401, "deleted": 4401, "new role": 4401}
        row.bystander = await bystander_ok(bystander, bob, [])


def _expire(session_key: str) -> None:
    Session.objects.filter(pk=session_key).update(expire_date=timezone.now())


def _forget(session_key: str) -> None:
    Session.objects.filter(pk=session_key).delete()


def _deactivate_quietly(user: Any) -> None:
    User.objects.filter(pk=user.pk).update(is_active=False)  # no signal: only the heartbeat


def _new_password_quietly(user: Any) -> None:
    fresh = User.objects.get(pk=user.pk)
    fresh.set_password("Another-Horse-77!")
    User.objects.filter(pk=user.pk).update(password=fresh.password)


@pytest.mark.asyncio
async def test_h7d_heartbeat_closes_a_socket_whose_session_ended(
    person: Any, bob: Person, bystander: InProc
) -> None:
    with report.case(
        "H7d",
        "behind the app's back (no signal): a session expires, a session row is deleted, an "
        "account is deactivated, a password changed; then each page sends its heartbeat",
    ) as row:
        codes = {}
        for name, change in (
            ("expired", _expire),
            ("deleted", _forget),
            ("deactivated", _deactivate_quietly),
            ("password", _new_password_quietly),
        ):
            someone = await db(person)(f"Heart {name}")
            page = await open_page(someone, name)
            await page.quiet(0.1)
            await page.send({"action": "heartbeat"})
            await page.quiet(0.2)
            still_open = page.close_code is None
            await db(change)(someone.cookie if name in ("expired", "deleted") else someone.user)
            await page.send({"action": "heartbeat"})
            codes[name] = await page.wait_closed(3)
            assert still_open, name
        row.set(
            result=f"a valid session's heartbeat keeps the page; after the change the next "
            f"heartbeat closes it: {codes}",
            sent=0,
        )
        assert set(codes.values()) == {4401}, codes
        row.bystander = await bystander_ok(bystander, bob, [])


# --------------------------------------------------------------------------- H7e–H7f frames


@pytest.mark.asyncio
async def test_h7e_surrogates_and_deep_nesting_get_a_notice(
    alice: Person, bob: Person, bystander: InProc
) -> None:
    frames = [
        ('{"action": "send", "message": "\\ud800"}', "not valid Unicode"),
        ('{"action": "send", "message": "hi \\udfff there"}', "not valid Unicode"),
        ('{"action": "send", "message": "ok", "\\ud800": 1}', "not valid Unicode"),
        ('{"action": "resync", "last_seq": 0, "streaming": ["\\ud800"]}', "not valid Unicode"),
        ('{"action": "send", "message": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
        (
            '{"action": "send", "x": ' + "[" * 20 + "]" * 20 + ', "message": "a"}',
            "nested too deeply",
        ),
        ('{"action": "send", "message": "' + "[" * 40 + '"}', ""),
    ]
    page = await open_page(alice, "alice")
    await page.quiet(0.1)
    with report.case(
        "H7e",
        "lone surrogates (\\ud800, \\udfff) in a message, a key and a resync list; 5,000 and 20 "
        "levels of nesting; a message of 40 '[' (text, not nesting)",
    ) as row:
        notices = []
        for text, expected in frames:
            before = len(page.page.notices)
            await page.send(text)
            if expected:
                assert await page.until(lambda p, n=before: len(p.notices) > n, 3), (
                    page.page.summary()
                )
                notices.append(page.page.notices[-1])
                assert expected in page.page.notices[-1]
            else:
                assert await page.until(lambda p: len(p.by_role("user")) == 1, 5)
            assert page.close_code is None
        await page.quiet(0.3)
        users = [m for m in await db(stored_messages)(alice.conv.pk) if m.role == "user"]
        row.set(
            result=f"each answered with a notice ({'; '.join(sorted(set(notices)))}), the "
            "socket kept open; the 40 brackets of text stored as a message",
            sent=len(frames),
            stored=len(users),
        )
        assert len(users) == 1 and users[0].content == "[" * 40
        assert page.close_code is None
        row.bystander = await bystander_ok(bystander, bob, [alice])
    await page.close()


@pytest.mark.asyncio
async def test_h7f_a_crashing_handler_still_cleans_up(
    settings: Any, monkeypatch: Any, alice: Person, bob: Person, bystander: InProc
) -> None:
    from chat.live import delivery

    settings.MAX_SOCKETS_PER_USER = 20

    def crash(value: object) -> int:
        raise RuntimeError("a handler bug")

    with report.case(
        "H7f",
        "20 pages (MAX_SOCKETS_PER_USER = 20) each send a resync whose handler raises; "
        "then a 21st page opens",
    ) as row:
        pages = []
        for i in range(20):
            sock = await InProc.open(application, alice.path, alice.headers, f"alice-{i}")
            assert sock.close_code is None
            pages.append(sock)
        monkeypatch.setattr(delivery, "parse_last_seq", crash)
        for sock in pages:
            await sock.send({"action": "resync", "last_seq": 0})
        codes = [await sock.wait_closed(3) for sock in pages]
        # The closes' clean-up runs on the database pool, after the close frame: give it 3 s.
        deadline = time.monotonic() + 3
        while (left := await db(connections_of)(alice.user)) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        monkeypatch.undo()
        extra = await InProc.open(application, alice.path, alice.headers, "alice-21")
        await extra.quiet(0.1)
        row.set(
            result=f"each crashed page closed {sorted(set(codes))}; {left} sockets left "
            f"registered; the 21st page "
            f"{'opened' if extra.close_code is None else f'closed {extra.close_code}'}",
            sent=20,
        )
        assert codes == [1011] * 20
        assert left == 0
        assert extra.close_code is None
        await extra.close()
        row.bystander = await bystander_ok(bystander, bob, [alice])


# --------------------------------------------------------------------------- H7g flood


def _server_env(ai: Any, **extra: str) -> dict[str, str]:
    return {
        **database_env(),
        "OPENAI_BASE_URL": ai.base_url,
        "OPENAI_API_KEY": "test-key",
        "AI_DAILY_LIMIT": "1000",
        "MESSAGES_PER_10S": "1000",
        "LOG_LEVEL": "ERROR",
        **extra,
    }


FLOOD_RATE = 10_000  # frames a second: the 50,000 frames in 5 s
ROOT = Path(__file__).resolve().parents[2]


def _cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    """CPU time every core of the machine has spent busy so far (Linux /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _ours_seconds() -> float:
    """CPU time of this test process and its finished children (the flood client)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


async def _start_flood(url: str, cookie: str, origin: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.wsflood",
        url,
        cookie,
        origin,
        "5",
        str(FLOOD_RATE),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )


@dataclass
class Flood:
    """What one flood did, and what Bob saw meanwhile."""

    out: dict[str, int]
    normal: list[float]
    during: list[float]
    after: list[float]
    cpu_flood: float
    cpu_after: float
    foreign_cores: float = 0.0  # cores other work on the machine used during the flood

    @property
    def base(self) -> float:
        return statistics.median(self.normal)

    @property
    def mid(self) -> float:
        return statistics.median(self.during)

    def closes(self) -> str:
        found = {k: v for k, v in self.out.items() if k.startswith("closed")}
        return ", ".join(f"{k} x{v}" for k, v in found.items()) or "never closed"

    def summary(self) -> str:
        return (
            f"{self.out['frames']:,} frames on {self.out['sockets']} socket(s), "
            f"{self.closes()}; daphne CPU {self.cpu_flood:.1f} s during "
            f"({self.cpu_flood / max(1, self.out['frames']) * 1e6:.0f} µs a frame), "
            f"{self.cpu_after:.2f} s in the 2 idle s after"
        )

    def within_target(self) -> bool:
        """Bob's median round trip during the flood within 2x of normal (0.1 s of slack:
        normal is a few hundredths of a second on a shared machine)."""
        return self.mid <= max(2 * self.base, self.base + 0.1)

    def bystander(self) -> str:
        target = "within" if self.within_target() else "OUTSIDE"
        return (
            f"normal {self.base:.2f} s, during median {self.mid:.2f} s "
            f"({self.mid / self.base:.1f}x, {target} the 2x target), worst "
            f"{max(self.during):.2f} s, {len(self.during)} replies; after "
            f"{statistics.median(self.after):.2f} s"
        )

    def check(self) -> None:
        assert self.during
        # The server work a 5-second flood buys: reading and dropping 50,000 frames costs
        # 3.3-4.9 s of CPU on this kind of machine (the same code measures either, by day);
        # handled one by one (before the budget) they cost 6-9 s on its fast days (SQLite
        # in-process; minutes with a database over the network), so less than 6 s is the
        # drop path. A core shared with other work does less per CPU second: 7.5 s then.
        budget = 6.0 if self.foreign_cores < 0.25 else 7.5
        assert self.cpu_flood + self.cpu_after < budget, (
            self.cpu_flood,
            self.cpu_after,
            self.foreign_cores,
        )
        # No queued flood left to work off: the server is idle as soon as the flood ends.
        assert self.cpu_after < 0.5, self.cpu_after


async def _flood_and_measure(ai: Any, alice: Person, bob: Person, **env: str) -> Flood:
    """On a fresh daphne: Bob's round trips before, during and after Alice's 5-second flood."""
    server = DaphneServer(_server_env(ai, **env))
    await asyncio.to_thread(server.start)
    url = f"ws://127.0.0.1:{server.port}"
    try:
        assert server.proc is not None
        watcher = await Remote.open(url + bob.path, cookie=bob.cookie_header, origin=server.url)
        await watcher.resync()
        await watcher.quiet(0.3)
        await converse(watcher, "Warming up")
        normal = [await converse(watcher, f"Before the flood {i}") for i in range(8)]
        cpu_before = _cpu_seconds(server.proc.pid)
        busy_before, ours_before, wall_before = (
            _machine_busy_seconds(),
            _ours_seconds(),
            time.monotonic(),
        )
        flood = await _start_flood(url + alice.path, alice.cookie_header, server.url)
        started = time.monotonic()
        during = []
        await asyncio.sleep(0.3)
        while flood.returncode is None and time.monotonic() - started < 4.8:
            during.append(await converse(watcher, f"During the flood {len(during)}"))
        output, _ = await asyncio.wait_for(flood.communicate(), 30)
        cpu_flood = _cpu_seconds(server.proc.pid) - cpu_before
        foreign = (_machine_busy_seconds() - busy_before) - (_ours_seconds() - ours_before)
        foreign_cores = max(0.0, foreign - cpu_flood) / (time.monotonic() - wall_before)
        # Nobody asks anything for 2 s: a server still working off a queued flood shows.
        cpu_mark = _cpu_seconds(server.proc.pid)
        await asyncio.sleep(2)
        cpu_after = _cpu_seconds(server.proc.pid) - cpu_mark
        after = [await converse(watcher, f"After the flood {i}") for i in range(3)]
        assert watcher.close_code is None
        await watcher.close()
        return Flood(json.loads(output), normal, during, after, cpu_flood, cpu_after, foreign_cores)
    finally:
        await asyncio.to_thread(server.stop)


@pytest.mark.asyncio
async def test_h7g_flood_of_heartbeats_and_resyncs(ai: Any, alice: Person, bob: Person) -> None:
    with report.case(
        "H7g",
        "one client sends heartbeats and resyncs, 10,000 frames a second for 5 s, from its own "
        "process, reconnecting whenever closed; Bob converses on the same daphne. Twice: with "
        "the hard limit off (one socket, every frame over budget dropped) and as configured",
    ) as row:
        # The drop path alone: the socket stays open however much it sends.
        sustained = await _flood_and_measure(ai, alice, bob, SOCKET_FRAMES_DROPPED_MAX="1000000000")
        await db(cache.clear)()
        limited = await _flood_and_measure(ai, alice, bob)
        row.set(
            result=f"hard limit off: {sustained.summary()}. As configured (10/s, burst 40; "
            f"500 dropped in 10 s close with 4429, then 10 s of held and refused handshakes): "
            f"{limited.summary()}",
            sent=f"{sustained.out['frames']:,} + {limited.out['frames']:,}",
            bystander=f"hard limit off: {sustained.bystander()}; as configured: "
            f"{limited.bystander()} (other work on the machine used "
            f"{sustained.foreign_cores:.2f} and {limited.foreign_cores:.2f} of "
            f"{os.cpu_count()} cores during the floods)",
        )
        assert sustained.out["sockets"] == 1
        assert not any(k.startswith("closed") for k in sustained.out)
        sustained.check()
        limited.check()
        # The latency target is recorded, and held where other work on the machine left the
        # flood, daphne and Bob their cores (else the round trips measure the scheduler: the
        # flood client and daphne take a core each, and a third party's share comes from
        # Bob's). Measured, not the load average: that counts the flood itself.
        if max(sustained.foreign_cores, limited.foreign_cores) < 0.25:
            assert sustained.within_target() and limited.within_target()


# --------------------------------------------------------------------------- H7h rooms


def _create_rooms(client: Client, count: int) -> list[Any]:
    return [
        client.post("/rooms/new/", {"name": f"Spam {i}", "topic": "buy now"}) for i in range(count)
    ]


def test_h7h_room_creation_is_limited_and_lively_rooms_come_first(
    settings: Any, make_user: Any
) -> None:
    cache.clear()
    spammer = make_user(nickname="Spammer")
    host = make_user(nickname="Host")
    guest = make_user(nickname="Guest")
    reader = make_user(nickname="Reader")
    with report.case(
        "H7h",
        "one account posts /rooms/new/ 40 times at once, then renames its room 31 times; "
        "another person's room list",
    ) as row:
        # Older rooms with life in them: one with two members, one with a message.
        from chat.rooms import services as rooms

        talked = rooms.room_create(owner=host, name="Talked in")
        rooms.room_join(user=guest, room=rooms.room_create(owner=host, name="Two members"))
        Conversation.objects.filter(pk=talked.pk).update(last_seq=1)
        client = Client()
        client.force_login(spammer)
        started = time.monotonic()
        answers = _create_rooms(client, 40)
        took = time.monotonic() - started
        created = sum(a.status_code == 302 for a in answers)
        refused = [a for a in answers if a.status_code == 429]
        room = Conversation.objects.filter(owner=spammer).first()
        renames = [
            client.post(f"/rooms/{room.pk}/rename/", {"name": f"Renamed {i}"}) for i in range(31)
        ]
        invite = client.post(f"/rooms/{room.pk}/invite/")
        listed = [r.title for r in room_selectors.rooms_for(reader)[:3]]
        page = Client()
        page.force_login(reader)
        first_page = page.get("/rooms/").content.decode()
        row.set(
            result=f"{created} created, {len(refused)} answered 429 "
            f'("You have created too many rooms in the last hour…") in {took:.1f} s; '
            f"renames: {sum(r.status_code == 302 for r in renames)} done, "
            f"{sum(r.status_code == 429 for r in renames)} answered 429, a new invite link "
            f"then {invite.status_code}; another person's list starts {listed}",
            sent=40 + 31 + 1,
            stored=Conversation.objects.filter(owner=spammer).count(),
        )
        assert created == settings.ROOMS_CREATED_PER_HOUR == 10
        assert len(refused) == 30
        assert b"too many rooms in the last hour" in refused[0].content
        assert [r.status_code for r in renames] == [302] * 30 + [429]
        assert invite.status_code == 429
        assert b"Too many changes to your rooms" in renames[-1].content
        assert set(listed[:2]) == {"Talked in", "Two members"}
        lively_end = max(first_page.index("Two members"), first_page.index("Talked in"))
        assert lively_end < min(first_page.index("Spam "), first_page.index("Renamed "))


# --------------------------------------------------------------------------- H7i private rooms

# Per-response tokens: nonces, CSRF tokens (form values, htmx's X-CSRFToken header JSON).
_NOISE = re.compile(rb'(nonce|value|content)="[^"]*"|"X-CSRFToken": "[^"]*"')


@pytest.mark.asyncio
async def test_h7i_private_room_is_indistinguishable_from_no_room(
    make_user: Any, bob: Person, bystander: InProc
) -> None:
    owner = await db(make_user)(nickname="Owner")
    outsider = await db(make_user)(nickname="Outsider")
    room = await db(private_room)(owner)
    outsider_cookie = await db(session_cookie)(outsider)
    owner_cookie = await db(session_cookie)(owner)
    unknown = uuid.uuid4()
    urls = [
        ("GET", "/c/{}/"),
        ("GET", "/c/{}/older/?before=5"),
        ("GET", "/c/{}/export.md"),
        ("GET", "/c/{}/export.json"),
        ("GET", "/rooms/{}/"),
        ("POST", "/rooms/{}/join/"),
        ("POST", "/rooms/{}/leave/"),
        ("GET", "/rooms/{}/delete/"),
    ]

    def fetch(cookie: str, conversation_id: Any) -> list[tuple[int, bytes]]:
        client = Client()
        client.cookies[django_settings.SESSION_COOKIE_NAME] = cookie
        answers = []
        for method, url in urls:
            call = client.get if method == "GET" else client.post
            response = call(url.format(conversation_id))
            answers.append((response.status_code, _NOISE.sub(b"", response.content)))
        return answers

    with report.case(
        "H7i",
        "an outsider asks for a private room and for an unknown id: /c/<id>/, older, exports "
        "(md, json), /rooms/<id>/, join, leave, delete; and opens its socket",
    ) as row:
        private = await db(fetch)(outsider_cookie, room.pk)
        missing = await db(fetch)(outsider_cookie, unknown)
        member = await db(fetch)(owner_cookie, room.pk)
        sock_headers = headers(outsider_cookie, "http://127.0.0.1", "127.0.0.1")
        private_sock = await handshake(f"/ws/chat/{room.pk}/", sock_headers)
        missing_sock = await handshake(f"/ws/chat/{unknown}/", sock_headers)
        row.set(
            result=f"private room: {[s for s, _ in private]}, unknown id: "
            f"{[s for s, _ in missing]} (same bodies); sockets {private_sock.close_code} / "
            f"{missing_sock.close_code}, no frame; the owner gets {[s for s, _ in member][:5]}",
            sent=0,
        )
        assert private == missing
        assert {s for s, _ in private} == {404}
        # The member: /c/ of a room leads to its room page; the rest answer.
        assert [s for s, _ in member][:5] == [302, 200, 200, 200, 200]
        assert private_sock.close_code == missing_sock.close_code == 4404
        assert not private_sock.page.messages and not private_sock.page.notices
        assert not missing_sock.page.notices
        row.bystander = await bystander_ok(bystander, bob, [])
