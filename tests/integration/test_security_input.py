"""Hostile input refused with nothing lost (issue #5): handshakes, frames, content, identity,
CSRF and production settings. Each case also checks that another person's open conversation
kept working. Results go to docs/reliability.md (tests/reliability_report.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern

from accounts.gateway import build_headers
from chat import frames
from chat.models import Conversation, Membership, Message
from project.asgi import application
from tests import reliability_report as report
from tests.fakes.fake_openai import HOSTILE_MARKDOWN, Script
from tests.reliability_report import (
    ORIGIN,
    InProc,
    Page,
    Person,
    Remote,
    assert_page_matches_db,
    bystander_ok,
    connections_of,
    converse,
    handshake,
    norm,
    open_page,
    parse,
    session_cookie,
    stored_messages,
)
from tests.serverproc import DaphneServer, database_env

pytest_plugins = ["tests.reliability_report"]
pytestmark = [pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
db = sync_to_async

# Hostile strings a person might type (each must be shown as text, none may act).
HOSTILE_TEXT = "\n".join(
    [
        "<img src=x onerror=alert(1)>",
        "</script><script>alert(2)</script>",
        '<div hx-get="/accounts/logout/" hx-trigger="load">bye</div>',
        '<div id="messages" hx-swap-oob="true">pwned</div>',
        '<span hx-swap-oob="beforeend:#quota">9999</span>',
        '</article></div><div hx-swap-oob="outerHTML:#composer">x</div>',
        '[click me](javascript:alert(3)) <a href="javascript:alert(4)">js</a>',
        "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCg1KTwvc2NyaXB0Pg==)",
        '<svg onload=alert(6)></svg> <iframe src="/accounts/logout/"></iframe>',
    ]
)
# The same, and more, as a model might answer (Markdown, so links and images get parsed).
HOSTILE_REPLY = (
    HOSTILE_TEXT
    + "\n\n![pic](javascript:alert(7)) [home](/accounts/logout/) [ok](https://example.com/a)\n\n"
    + '<a href="https://example.com" onclick="alert(8)" hx-post="/accounts/logout/">x</a>\n'
    + '</span><div hx-swap-oob="beforeend:#messages" id="messages">swap</div><span>'
)
TOKEN_ESCAPE = '</span><div hx-swap-oob="true" id="messages">pwned</div><span>'
# One token (no blank inside: "/" separates attributes as well as a blank does).
ONE_TOKEN = '</span><div/hx-swap-oob="true"/id="messages">pwned</div><span>'
TOKEN_REPLY = f"Sure: {ONE_TOKEN} {TOKEN_ESCAPE} and then some more words"


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


@pytest.fixture
def room(alice: Person, make_user: Any) -> tuple[Any, Person, Person]:
    """A room of Alice (owner) and Carol; Carol as a Person in the room."""
    carol_user = make_user(nickname="Carol")
    conv = Conversation.objects.create(
        kind=Conversation.Kind.ROOM, title="Security room", owner=alice.user, is_public=False
    )
    Membership.objects.create(conversation=conv, user=alice.user, role=Membership.Role.OWNER)
    Membership.objects.create(conversation=conv, user=carol_user, role=Membership.Role.MEMBER)
    return (
        conv,
        Person(alice.user, conv, alice.cookie),
        Person(carol_user, conv, session_cookie(carol_user)),
    )


@pytest_asyncio.fixture
async def bystander(ai: Any, bob: Person) -> Any:
    """Bob's practice page, open for the whole test."""
    sock = await open_page(bob, "bob")
    await sock.quiet(0.1)
    yield sock
    await sock.close()


# --------------------------------------------------------------------------- H1 handshakes


@pytest.mark.asyncio
async def test_h1_handshakes(
    alice: Person, bob: Person, room: Any, person: Any, bystander: InProc
) -> None:
    conv, _alice_in_room, _carol = room
    stranger = await db(person)("Stranger")
    origin = (b"origin", ORIGIN.encode())
    host = (b"host", b"127.0.0.1")
    cookie = (b"cookie", alice.cookie_header.encode())
    with report.case("H1a", "socket opened with no session cookie") as row:
        sock = await handshake(alice.path, [origin, host])
        row.set(result=f"accepted then closed {sock.close_code}; nothing subscribed", sent=0)
        assert sock.close_code == 4401
        row.bystander = await bystander_ok(bystander, bob, [alice])
    with report.case("H1b", "Origin: https://evil.example with a valid session cookie") as row:
        sock = await handshake(alice.path, [cookie, (b"origin", b"https://evil.example")])
        look_alike = await handshake(
            alice.path, [cookie, (b"origin", b"http://127.0.0.1.evil.example")]
        )
        refused = not hasattr(sock, "comm") or sock.close_code is not None
        row.set(
            result=f"refused at the handshake (close {sock.close_code}, look-alike host "
            f"{look_alike.close_code}); the consumer never ran",
            sent=0,
        )
        assert refused and sock.close_code not in (None, 4401, 4403, 4404)
        assert look_alike.close_code == sock.close_code
        assert await db(connections_of)(alice.user) == 0
        row.bystander = await bystander_ok(bystander, bob, [alice])
    with report.case("H1c", "no Origin header at all (a script, not a browser)") as row:
        sock = await handshake(alice.path, [cookie])
        row.set(
            result=f"refused at the handshake (close {sock.close_code}), like a foreign Origin",
            sent=0,
        )
        assert sock.close_code == look_alike.close_code
        assert await db(connections_of)(alice.user) == 0
        row.bystander = await bystander_ok(bystander, bob, [alice])
    with report.case(
        "H1d", "a signed-in stranger opens a private room, Alice's practice, a random id"
    ) as row:
        in_room = await handshake(f"/ws/chat/{conv.pk}/", stranger.headers)
        practice = await handshake(alice.path, stranger.headers)
        missing = await handshake(f"/ws/chat/{uuid.uuid4()}/", stranger.headers)
        codes = (in_room.close_code, practice.close_code, missing.close_code)
        row.set(
            result=f"private room {codes[0]}, someone's practice {codes[1]} (neither revealed), "
            f"unknown {codes[2]}; no frame of theirs sent",
            sent=0,
        )
        assert codes == (4404, 4404, 4404)
        assert not in_room.page.messages and not practice.page.messages
        row.bystander = await bystander_ok(bystander, bob, [alice])


@pytest.fixture(scope="module")
def daphne(django_db_setup: Any, django_db_blocker: Any, fake_openai: Any) -> Any:
    """The real server (daphne subprocess) on the test database."""
    with django_db_blocker.unblock():
        env = database_env()
    env |= {
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": "test-key",
        "AI_DAILY_LIMIT": "50",
        "LOG_LEVEL": "ERROR",
    }
    server = DaphneServer(env).start()
    yield server
    server.stop()


@pytest.mark.asyncio
async def test_h1_handshakes_on_the_real_server(daphne: Any, alice: Person) -> None:
    """What a browser or script gets from daphne for the refused handshakes above."""
    url = f"ws://127.0.0.1:{daphne.port}{alice.path}"
    foreign = await Remote.open(url, cookie=alice.cookie_header, origin="https://evil.example")
    none = await Remote.open(url, cookie=alice.cookie_header, origin=None)
    anonymous = await Remote.open(url, origin=daphne.url)
    await anonymous.wait_closed(3)
    ok = await Remote.open(url, cookie=alice.cookie_header, origin=daphne.url)
    try:
        assert foreign.close_code == -403 and none.close_code == -403  # HTTP 403, no socket
        assert anonymous.close_code == 4401
        assert ok.close_code is None
        report.ROWS["H1b"].result += "; daphne answers the handshake with HTTP 403"
        report.ROWS["H1c"].result += "; daphne answers the handshake with HTTP 403"
    finally:
        for sock in (foreign, none, anonymous, ok):
            await sock.close()


@pytest.mark.asyncio
async def test_h1e_logout_in_another_tab_closes_the_socket(
    alice: Person, bob: Person, bystander: InProc
) -> None:
    with report.case(
        "H1e", "Alice logs out (POST /accounts/logout/) in another tab; 2 pages open"
    ) as row:
        page = await open_page(alice, "alice")
        other = await open_page(alice, "alice-2")
        await page.quiet(0.1)
        client = Client()
        client.cookies[django_settings.SESSION_COOKIE_NAME] = alice.cookie
        response = await db(client.post)("/accounts/logout/")
        codes = (await page.wait_closed(3), await other.wait_closed(3))
        again = await handshake(alice.path, alice.headers)
        row.set(
            result=f"logout answered {response.status_code}; both open pages closed "
            f"{codes[0]}/{codes[1]}; reopening with the old cookie: {again.close_code}",
            sent=0,
        )
        assert response.status_code == 302
        assert codes == (4401, 4401) and again.close_code == 4401
        row.bystander = await bystander_ok(bystander, bob, [alice])


# --------------------------------------------------------------------------- H2 frames

BAD_FRAMES: list[tuple[Any, str]] = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    ('"just a string"', "not a JSON object"),
    ({"action": "send", "message": 5}, "must be text"),
    ({"action": "send", "message": None}, "must be text"),
    ({"action": "send", "message": {"text": "hi"}}, "must be text"),
    ({"action": "send", "message": ["hi"]}, "must be text"),
    ({"action": "send", "message": "   "}, "Type a message"),
    ({"action": "send", "message": "x" * 5000}, "too long"),
    ({"action": "resync", "last_seq": "x"}, "Bad resync"),
    ({"action": "resync", "last_seq": [1]}, "Bad resync"),
    ({"action": "resync", "last_seq": 10**30}, "Bad resync"),
    ({"action": "resync", "last_seq": 1e308}, "Bad resync"),
    ({"action": "resync", "last_seq": 0, "streaming": ["../../etc", 5, None, "x" * 99]}, ""),
    ({"action": 5}, "Unknown action"),
    ({"message": "no action"}, "Unknown action"),
]


async def expect_notice(sock: InProc | Remote, text: str) -> str:
    """The next notice on the page (the socket must stay open)."""
    before = len(sock.page.notices)
    if not text:  # accepted quietly
        await sock.quiet(0.15)
        return ""
    assert await sock.until(lambda p: len(p.notices) > before, 3), sock.page.summary()
    assert sock.close_code is None
    notice = sock.page.notices[-1]
    assert text in notice, notice
    return notice


@pytest.mark.asyncio
async def test_h2_malformed_and_wrongly_typed_frames(
    alice: Person, bob: Person, bystander: InProc
) -> None:
    page = await open_page(alice, "alice")
    await page.quiet(0.1)
    with report.case(
        "H2a",
        f"{len(BAD_FRAMES)} frames: bad JSON, a list, message 5/null/object/list/blank/5000 "
        "chars, last_seq 'x'/[1]/10^30/1e308, junk ids, action 5, no action",
    ) as row:
        for frame, notice in BAD_FRAMES:
            await page.send(frame if isinstance(frame, str) else json.dumps(frame))
            await expect_notice(page, notice)
        # The page still works: a proper send is stored once.
        await page.say("A proper answer after all that.")
        assert await page.until(lambda p: len(p.by_role("user")) == 1, 5)
        await page.quiet(0.3)
        messages = await db(stored_messages)(alice.conv.pk)
        users = [m for m in messages if m.role == "user"]
        row.set(
            result=f"each answered with a notice for that page ({len(page.page.notices)} "
            "notices), socket kept open, nothing stored; the next proper message stored once",
            sent=f"{len(BAD_FRAMES)} bad + 1",
            stored=f"0 + {len(users)}",
            delivered=f"0 + {len(page.page.by_role('user'))}",
        )
        assert len(users) == 1
        assert page.close_code is None
        row.bystander = await bystander_ok(bystander, bob, [alice])
    await page.close()


@pytest.mark.asyncio
async def test_h2_binary_unknown_and_huge_frames(
    alice: Person, bob: Person, bystander: InProc, daphne: Any
) -> None:
    page = await open_page(alice, "alice")
    await page.quiet(0.1)
    big = json.dumps({"action": "send", "message": "x" * (2 * 1024 * 1024)})
    with report.case(
        "H2b",
        "a binary frame; actions 'drop', '__init__', 'dispatch', 'chat.frame', 'session_ended'; "
        "a 2 MB "
        "send frame (in process, and to daphne)",
    ) as row:
        await page.send(b"\x00\x01binary")
        await expect_notice(page, "Binary frames are not supported")
        for action in ("drop", "__init__", "dispatch", "chat.frame", "session_ended"):
            await page.send({"action": action, "html": "<div id='messages'>x</div>"})
            await expect_notice(page, "Unknown action")
        await page.send(big)
        await expect_notice(page, "too large")
        # The real server refuses the frame at the protocol level (daphne: 1 MB limit).
        url = f"ws://127.0.0.1:{daphne.port}{alice.path}"
        remote = await Remote.open(url, cookie=alice.cookie_header, origin=daphne.url)
        await remote.resync()
        await remote.quiet(0.2)
        await remote.send(big)
        remote_code = await remote.wait_closed(5)
        await remote.close()
        await page.say("Still here.")
        assert await page.until(lambda p: len(p.by_role("user")) == 1, 5)
        await page.quiet(0.3)
        messages = await db(stored_messages)(alice.conv.pk)
        users = [m for m in messages if m.role == "user"]
        row.set(
            result=f"notices for binary, unknown actions and the 2 MB frame (socket kept); "
            f"daphne dropped the socket that sent 2 MB ({remote_code}; its limit is 1 MB); "
            "nothing stored",
            sent="8 bad + 1",
            stored=f"0 + {len(users)}",
            delivered=f"0 + {len(page.page.by_role('user'))}",
        )
        assert len(users) == 1 and page.close_code is None
        assert remote_code in (1006, 1009)  # autobahn fails the connection: message too big
        check = await Remote.open(url, cookie=alice.cookie_header, origin=daphne.url)
        assert check.close_code is None  # the server itself is fine
        await check.close()
        assert not page.page.problems
        row.bystander = await bystander_ok(bystander, bob, [alice])
    await page.close()


@pytest.mark.asyncio
async def test_h2_flood_of_messages(
    settings: Any, alice: Person, bob: Person, room: Any, bystander: InProc
) -> None:
    conv, alice_in_room, carol = room
    limit = settings.MESSAGES_PER_10S
    page = await open_page(alice_in_room, "alice")
    watcher = await open_page(carol, "carol")
    await page.quiet(0.1)
    await watcher.quiet(0.1)
    with report.case(
        "H2c",
        f"1,000 send frames at once from one socket (limit {limit}/10 s; frame budget "
        f"burst {settings.SOCKET_FRAMES_BURST:.0f})",
    ) as row:
        started = time.monotonic()
        for i in range(1000):
            await page.send({"action": "send", "message": f"flood {i}"})
        # Bob's own conversation answers while the flood is being refused.
        bob_took = await converse(bystander, "Am I slowed down by the flood?")
        code = await page.wait_closed(20)
        elapsed = time.monotonic() - started
        await watcher.until(lambda p: len(p.messages) >= page.page.composer_cleared, 5)
        await watcher.quiet(0.2)
        messages = await db(stored_messages)(conv.pk)
        accepted = page.page.composer_cleared
        too_fast = sum("too fast" in n and "ignored" not in n for n in page.page.notices)
        ignored = sum("some of it was ignored" in n for n in page.page.notices)
        handled = accepted + too_fast
        row.set(
            result=f"{accepted} accepted, {too_fast} refused with a notice, the other "
            f"{1000 - handled} dropped unread ({ignored} notice: "
            f'"You are sending too fast: some of it was ignored."); closed {code} past 500 '
            f"dropped, in {elapsed:.1f} s",
            sent="1000",
            stored=str(len(messages)),
            delivered=f"{len(page.page.messages)} / {len(watcher.page.messages)}",
            bystander=f"open; its reply came in {bob_took:.2f} s during the flood",
        )
        # The frame budget's burst is handled (the send limit refuses most), the rest dropped.
        assert settings.SOCKET_FRAMES_BURST <= handled <= settings.SOCKET_FRAMES_BURST + 20
        assert limit <= accepted <= 2 * limit
        assert ignored == 1 and code == 4429
        assert len(messages) == accepted
        assert_page_matches_db(page.page, messages)
        assert_page_matches_db(watcher.page, messages)
        assert bob_took < 5
    await page.close()
    await watcher.close()


@pytest.mark.asyncio
async def test_h2_too_many_sockets(
    settings: Any, alice: Person, bob: Person, bystander: InProc
) -> None:
    settings.MAX_SOCKETS_PER_USER = 5
    with report.case("H2d", "Alice opens 6 pages at once (MAX_SOCKETS_PER_USER = 5)") as row:
        pages = [await open_page(alice, f"alice-{i}") for i in range(5)]
        extra = await InProc.open(application, alice.path, alice.headers, "alice-6")
        code = await extra.wait_closed(3)
        open_rows = await db(connections_of)(alice.user)
        await pages[0].close()
        again = await open_page(alice, "alice-again")
        await again.quiet(0.1)
        row.set(
            result=f'6th page: notice "{extra.page.notices[-1] if extra.page.notices else ""}" '
            f"and close {code}; {open_rows} sockets recorded; after one closed, a new one opened",
            sent=0,
        )
        assert code == 4429 and open_rows == 5
        assert again.close_code is None
        row.bystander = await bystander_ok(bystander, bob, [alice])
    for sock in [*pages[1:], again]:
        await sock.close()


# --------------------------------------------------------------------------- H3 content


def get(person: Person, url: str) -> Any:
    client = Client()
    client.cookies[django_settings.SESSION_COOKIE_NAME] = person.cookie
    return client.get(url)


async def reloaded(person: Person, url: str) -> Page:
    """The page as a reload shows it (every message through the same checks as frames)."""
    response = await db(get)(person, url)
    assert response.status_code == 200, response.status_code
    page = Page(f"reload {url}")
    page.load_html(response.content.decode())
    return page


async def exported(person: Person) -> tuple[Any, Any]:
    """The Markdown and JSON exports: downloads, never rendered as HTML."""
    md = await db(get)(person, f"/c/{person.conv.pk}/export.md")
    js = await db(get)(person, f"/c/{person.conv.pk}/export.json")
    for response, kind in ((md, "text/markdown"), (js, "application/json")):
        assert response.status_code == 200
        assert response["Content-Type"].startswith(kind)
        assert response["Content-Disposition"].startswith("attachment;")
        assert response["X-Content-Type-Options"] == "nosniff"
    return md, json.loads(js.content)


def all_clean(*pages: Page) -> list[str]:
    return [f"{p.name}: {problem}" for p in pages for problem in p.problems]


@pytest.mark.asyncio
async def test_h3_hostile_user_text(
    ai: Any, alice: Person, bob: Person, room: Any, bystander: InProc
) -> None:
    conv, alice_in_room, carol = room
    page = await open_page(alice, "alice")
    in_room = await open_page(alice_in_room, "alice-room")
    carols = await open_page(carol, "carol-room")
    for sock in (page, in_room, carols):
        await sock.quiet(0.1)
    with report.case(
        "H3a",
        "one message of 9 hostile lines (img onerror, </script>, hx-get+hx-trigger=load, "
        'id="messages" hx-swap-oob, oob into #quota/#composer, javascript: and data: links, '
        "svg onload, iframe) in a practice chat and in a room",
    ) as row:
        await page.say(HOSTILE_TEXT)
        await in_room.say(HOSTILE_TEXT)
        assert await page.until(lambda p: len(p.by_role("assistant")) == 2 and not p.streaming())
        assert await carols.until(lambda p: len(p.by_role("user")) == 1)
        await in_room.until(lambda p: len(p.by_role("user")) == 1)
        pages = [page.page, in_room.page, carols.page]
        pages.append(await reloaded(alice, f"/c/{alice.conv.pk}/"))
        pages.append(await reloaded(carol, f"/rooms/{conv.pk}/"))
        md, data = await exported(alice)
        shown = [p.by_role("user")[0].body for p in pages]
        practice = await db(stored_messages)(alice.conv.pk)
        in_db = await db(stored_messages)(conv.pk)
        row.set(
            result="shown as the typed text in the sender's and the other member's frames and "
            "after a reload: no element, attribute or link from it reached any page; exports "
            "are attachments (text/markdown, application/json, nosniff) with the text as typed",
            sent="2",
            stored=str(sum(m.role == "user" for m in practice + in_db)),
            delivered=f"{len(pages)} pages",
        )
        assert all_clean(*pages) == []
        assert all(norm(text) == norm(HOSTILE_TEXT) for text in shown), shown
        assert HOSTILE_TEXT in md.content.decode()
        assert data["messages"][1]["content"] == HOSTILE_TEXT
        assert_page_matches_db(page.page, practice)
        assert_page_matches_db(carols.page, in_db)
        row.bystander = await bystander_ok(bystander, bob, [alice])
    for sock in (page, in_room, carols):
        await sock.close()


@pytest.mark.asyncio
async def test_h3_hostile_model_output(
    ai: Any, alice: Person, bob: Person, bystander: InProc
) -> None:
    page = await open_page(alice, "alice")
    await page.quiet(0.1)
    with report.case(
        "H3b",
        "model replies: the fake's [[fake:markdown]] and a scripted reply with the same "
        "lines plus ![img](javascript:), a relative link, onclick/hx-post on <a>, a span "
        "escape; streamed slowly so a second page joins mid-reply (snapshot frame)",
    ) as row:
        await page.say("Give me advice [[fake:markdown]]")
        assert await page.until(lambda p: len(p.by_role("assistant")) == 2 and not p.streaming())
        ai.script = Script(text=HOSTILE_REPLY, delay=0.02)
        before = page.page.token_frames
        await page.say("And another one, please.")
        assert await page.until(lambda p: p.streaming() and p.token_frames > before + 5, 5)
        joiner = await open_page(alice, "alice-joins")  # gets a snapshot of the growing reply
        for sock in (page, joiner):
            assert await sock.until(
                lambda p: len(p.by_role("assistant")) == 3 and not p.streaming(), 10
            ), sock.page.summary()
            await sock.quiet(0.2)
        pages = [page.page, joiner.page, await reloaded(alice, f"/c/{alice.conv.pk}/")]
        md, data = await exported(alice)
        messages = await db(stored_messages)(alice.conv.pk)
        replies = [m for m in messages if m.role == "assistant"][1:]
        final = page.page.by_role("assistant")
        links = [
            n.attrs.get("href") for n in final[-1].node.walk() if n.tag == "a"
        ]  # what survived as a link
        row.set(
            result=f"{page.page.token_frames} token frames, a snapshot and 2 final frames: "
            "raw HTML shown as text, javascript:/data:/relative links and images dropped, "
            f"only {links} kept as a link (rel=nofollow noopener noreferrer); same after reload",
            sent="2 replies",
            stored=str(len(replies)),
            delivered=f"{len(final) - 1} (+ {len(joiner.page.by_role('assistant')) - 1} on "
            "the page that joined)",
        )
        assert all_clean(*pages) == []
        assert [r.content for r in replies] == [HOSTILE_MARKDOWN, HOSTILE_REPLY]
        assert links == ["https://example.com/a"]
        assert "<img src=x onerror=alert(1)>" in final[-1].body  # visible as text
        assert '<div id="messages" hx-swap-oob="true">pwned</div>' in final[1].body
        assert data["messages"][-1]["content"] == HOSTILE_REPLY
        assert_page_matches_db(page.page, messages)
        assert_page_matches_db(joiner.page, messages)
        row.bystander = await bystander_ok(bystander, bob, [alice])
    await page.close()
    await joiner.close()


@pytest.mark.asyncio
async def test_h3_token_cannot_close_its_span(
    ai: Any, alice: Person, bob: Person, bystander: InProc
) -> None:
    page = await open_page(alice, "alice")
    await page.quiet(0.1)
    with report.case(
        "H3c", f"model tokens {ONE_TOKEN} (one token) and {TOKEN_ESCAPE} (several)"
    ) as row:
        # Tokens 10 ms apart are joined into frames every 40 ms; words after it make sure
        # the escape attempt is flushed as token frames before the final frame.
        ai.script = Script(text=TOKEN_REPLY, delay=0.01)
        await page.say("Short answer please.")
        assert await page.until(lambda p: len(p.by_role("assistant")) == 2 and not p.streaming())
        await page.quiet(0.2)
        reply = page.page.by_role("assistant")[-1]
        streamed = page.page.streamed[reply.id]
        direct = parse(frames.tokens(reply.id, TOKEN_ESCAPE))
        row.set(
            result=f"{page.page.token_frames} token frames, each one <span> holding only "
            "text: the markup arrived escaped and showed as text; the final frame too",
            sent="1 reply",
            stored="1",
            delivered="1",
        )
        assert not page.page.problems
        assert norm(TOKEN_REPLY).startswith(norm(streamed))
        assert ONE_TOKEN in streamed and TOKEN_ESCAPE in streamed
        assert norm(reply.body) == norm(TOKEN_REPLY)
        assert any(ONE_TOKEN in t for t in page.page.token_texts), page.page.token_texts
        assert len(direct.children) == 1 and direct.children[0].children == [TOKEN_ESCAPE]
        row.bystander = await bystander_ok(bystander, bob, [alice])
    await page.close()


# --------------------------------------------------------------------------- H4 identity

SECRET = "reliability-suite-gateway-secret"


@pytest.mark.asyncio
async def test_h4_spoofed_forwarded_for(alice: Person, bob: Person, bystander: InProc) -> None:
    """allauth counts failed logins per client IP: a forged X-Forwarded-For must not reset it."""

    def attempt(i: int, address: str) -> bool:
        """One failed login; True when allauth refused it as one too many."""
        client = Client(REMOTE_ADDR=address)
        response = client.post(
            "/accounts/login/",
            {"login": f"nobody{i}@example.com", "password": "wrong-password"},
            headers={"X-Forwarded-For": f"198.51.100.{i}", "X-Real-IP": f"192.0.2.{i}"},
        )
        assert response.status_code in (200, 429)
        return response.status_code == 429 or b"Too many failed login attempts" in response.content

    def attempts() -> list[bool]:
        limited = [attempt(i, "203.0.113.7") for i in range(11)]
        return [*limited, attempt(99, "203.0.113.8")]  # someone else, another address

    with report.case(
        "H4a",
        "11 failed logins from one address, each with a different X-Forwarded-For/X-Real-IP "
        "(limit: 10 per minute per IP)",
    ) as row:
        limited = await db(attempts)()
        row.set(
            result=f"attempts 1-10 refused as wrong passwords, attempt 11 "
            f"{'refused: too many failed attempts' if limited[10] else 'let through'} — the "
            "forged headers did not change the address counted; another real address: "
            f"{'limited' if limited[11] else 'not limited'}",
            sent=0,
        )
        assert limited == [False] * 10 + [True, False], limited
        row.bystander = await bystander_ok(bystander, bob, [alice])


@pytest.mark.asyncio
async def test_h4_identity_from_the_payload_or_query(
    alice: Person, bob: Person, room: Any, bystander: InProc
) -> None:
    conv, alice_in_room, carol = room
    page = await open_page(alice_in_room, "alice")
    other = await open_page(carol, "carol")
    await page.quiet(0.1)
    await other.quiet(0.1)
    with report.case(
        "H4b",
        "send frames with user_id/author/author_id/user = Carol; sockets and pages with "
        "?user_id=<Carol or Bob> in the query string",
    ) as row:
        forged = carol.user.pk
        await page.say("Who wrote this?", user_id=forged, author=forged, author_id=forged)
        await page.say("And this?", user={"id": forged, "is_staff": True})
        assert await other.until(lambda p: len(p.messages) == 2)
        assert await page.until(lambda p: len(p.messages) == 2)
        anonymous = await handshake(
            f"{alice.path}?user_id={alice.user.pk}",
            [(b"origin", ORIGIN.encode()), (b"host", b"127.0.0.1")],
        )
        as_alice = await handshake(f"{bob.path}?user_id={bob.user.pk}", alice.headers)
        http = await db(get)(alice, f"/c/{bob.conv.pk}/?user_id={bob.user.pk}")
        home = await db(Client().get)(f"/?user_id={alice.user.pk}")
        messages = await db(stored_messages)(conv.pk)
        authors = {m.author_id for m in messages}
        shown = {m.author for m in other.page.ordered()}
        row.set(
            result="both stored and shown as Alice's (data-author = her id); socket "
            f"with ?user_id and no cookie: {anonymous.close_code}; Alice's cookie + "
            f"?user_id=Bob on Bob's chat: {as_alice.close_code}; HTTP: {http.status_code}; "
            "home with ?user_id: the signed-out landing page",
            sent="2",
            stored=str(len(messages)),
            delivered=f"{len(page.page.messages)} / {len(other.page.messages)}",
        )
        assert authors == {alice.user.pk} and shown == {str(alice.user.pk)}
        assert anonymous.close_code == 4401 and as_alice.close_code == 4404
        assert http.status_code == 404
        assert b'data-testid="nav-user"' not in home.content
        assert_page_matches_db(other.page, messages)
        row.bystander = await bystander_ok(bystander, bob, [alice])
    await page.close()
    await other.close()


@pytest.mark.asyncio
async def test_h4_gateway_signatures(
    settings: Any, alice: Person, bob: Person, bystander: InProc
) -> None:
    settings.GATEWAY_SHARED_SECRET = SECRET
    settings.GATEWAY_MAX_AGE_SECONDS = 300
    tag = uuid.uuid4().hex[:8]
    who = {"user_id": f"gw-{tag}", "email": f"gw-{tag}@example.com", "nickname": "Gateway"}
    # Alice's e-mail, claimed through the gateway without the secret.
    target = {"user_id": f"gw-x{tag}", "email": alice.user.email, "nickname": "Alice"}
    now = int(time.time())

    def profile(headers: dict[str, str]) -> int:
        return Client().get("/profile/", headers=headers).status_code

    def tampered() -> dict[str, str]:
        headers = build_headers(**who, secret=SECRET)
        headers["X-Gateway-Email"] = alice.user.email  # signed for someone else
        return headers

    async def ws(headers: dict[str, str], *extra: tuple[bytes, bytes]) -> int | None:
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        sock = await handshake(
            alice.path, [*raw, *extra, (b"origin", ORIGIN.encode()), (b"host", b"127.0.0.1")]
        )
        return sock.close_code

    with report.case(
        "H4c",
        "gateway headers: wrong secret, tampered e-mail, 10 min old, 2 min in the future, "
        "replayed, duplicated header, on HTTP and on the socket",
    ) as row:
        forged = {
            "wrong secret": build_headers(**target, secret="not-the-secret"),
            "tampered": tampered(),
            "stale": build_headers(**target, secret=SECRET, timestamp=now - 600),
            "future": build_headers(**target, secret=SECRET, timestamp=now + 120),
        }
        results = {name: await db(profile)(h) for name, h in forged.items()}
        sockets = {
            name: await ws(h)
            for name, h in {
                "wrong secret": build_headers(**target, secret="nope"),
                "tampered": tampered(),
                "stale": build_headers(**target, secret=SECRET, timestamp=now - 600),
            }.items()
        }
        # A valid signature for someone, plus a second, client-added user id header.
        sockets["duplicated"] = await ws(
            build_headers(**who, secret=SECRET), (b"x-gateway-user-id", b"gw-admin")
        )
        valid = build_headers(**who, secret=SECRET)
        first = await db(profile)(valid)
        replay = await db(profile)(valid)
        row.set(
            result=f"HTTP /profile/: forged {sorted(set(results.values()))} (redirect to "
            f"log in); valid {first}, the same headers replayed {replay}; socket on Alice's "
            f"chat with forged headers: {sorted(set(sockets.values()))} (anonymous)",
            sent=0,
        )
        assert set(results.values()) == {302} and set(sockets.values()) == {4401}
        assert first == 200 and replay == 302
        row.bystander = await bystander_ok(bystander, bob, [alice])


# --------------------------------------------------------------------------- H5 CSRF, settings


def _sample(pattern: Any) -> str:
    """A concrete path for one URL pattern (route converters or regex groups filled in)."""
    if isinstance(pattern, RoutePattern):
        text = str(pattern)
        fills = {"uuid": str(uuid.uuid4()), "int": "1", "id": "1", "path": "x/y"}
        return re.sub(
            r"<(?:(\w+):)?(\w+)>",
            lambda m: "md" if m.group(2) == "fmt" else fills.get(m.group(1) or "str", "x"),
            text,
        )
    assert isinstance(pattern, RegexPattern)
    text = str(pattern).lstrip("^").removesuffix("$").removesuffix("\\Z")

    def group(m: re.Match[str]) -> str:
        body = m.group(2)
        if re.fullmatch(r"[\w|-]+", body):  # an alternation of literals: take the first
            return body.split("|")[0]
        return "1"

    text = re.sub(r"\(\?P<(\w+)>((?:[^()]|\([^()]*\))*)\)", group, text)
    return text.replace("\\", "")


def post_urls() -> list[str]:
    """Every URL of the app, each with sample arguments."""
    found: list[str] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + _sample(p.pattern))
            elif isinstance(p, URLPattern):
                found.append("/" + prefix + _sample(p.pattern))

    walk(get_resolver().url_patterns, "")
    return sorted(set(found))


@pytest.mark.asyncio
async def test_h5_csrf_on_every_post(
    make_user: Any, alice: Person, bob: Person, bystander: InProc
) -> None:
    staff = await db(make_user)(nickname="Staff", is_staff=True, is_superuser=True)

    def probe() -> tuple[dict[str, int], list[str]]:
        client = Client(enforce_csrf_checks=True)
        client.force_login(staff)
        codes, unresolved = {}, []
        for url in post_urls():
            try:
                resolve(url)
            except Exception:
                unresolved.append(url)
                continue
            codes[url] = client.post(url, {"x": "1"}).status_code
        return codes, unresolved

    with report.case(
        "H5a", "POST without a CSRF token to every URL in the URLconf, signed in as staff"
    ) as row:
        codes, unresolved = await db(probe)()
        not_refused = {url: code for url, code in codes.items() if code != 403}
        row.set(
            result=f"{len(codes)} URLs (app, allauth, admin): all answered 403"
            if not not_refused
            else f"not refused: {not_refused}",
            sent=len(codes),
            stored=0,
        )
        assert len(codes) > 50 and not unresolved, unresolved
        assert not not_refused
        assert await db(lambda: Message.objects.filter(author=staff).count())() == 0
        row.bystander = await bystander_ok(bystander, bob, [alice])


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"TESTING", "DEBUG", "SECRET_KEY"}}
    base.pop("ALLOWED_HOSTS", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.asyncio
async def test_h5_production_settings() -> None:
    key = "x7" + uuid.uuid4().hex + uuid.uuid4().hex
    prod = {"DEBUG": "0", "SECRET_KEY": key, "ALLOWED_HOSTS": "practalk.example"}
    with report.case(
        "H5b",
        "manage.py check --deploy --fail-level WARNING with DEBUG=0, a real SECRET_KEY and "
        "ALLOWED_HOSTS, no TESTING; then ALLOWED_HOSTS=*, none, and no SECRET_KEY",
    ) as row:
        results = await asyncio.gather(
            asyncio.to_thread(manage, prod, "check", "--deploy", "--fail-level", "WARNING"),
            asyncio.to_thread(manage, {**prod, "ALLOWED_HOSTS": "*"}, "check"),
            asyncio.to_thread(manage, {**prod, "ALLOWED_HOSTS": ""}, "check"),
            asyncio.to_thread(manage, {"DEBUG": "0", "ALLOWED_HOSTS": "a.example"}, "check"),
        )
        deploy, star, empty, no_key = results
        star_error = star.stderr.strip().splitlines()[-1].split(": ", 1)[-1]
        row.set(
            result=f"check --deploy: exit {deploy.returncode}, "
            f'"{deploy.stdout.strip() or deploy.stderr.strip()[-200:]}"; ALLOWED_HOSTS=*: '
            f"exit {star.returncode} ({star_error}); empty "
            f"ALLOWED_HOSTS: exit {empty.returncode}; no SECRET_KEY: exit {no_key.returncode}",
            sent=0,
        )
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        assert "no issues" in deploy.stdout
        assert star.returncode != 0 and "ALLOWED_HOSTS=* is refused" in star.stderr
        assert empty.returncode != 0 and "ALLOWED_HOSTS must be set" in empty.stderr
        assert no_key.returncode != 0 and "SECRET_KEY must be set" in no_key.stderr
