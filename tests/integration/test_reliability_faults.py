"""Faults survived with nothing lost (issue #5): each test injects one fault and checks that
messages sent = stored = delivered, what the person sees, and that someone else's open
conversation kept working. Results go to docs/reliability.md (tests/reliability_report.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection
from django.test import Client

from chat import conversations, dbasync, events, frames
from chat.coach import quota, tasks
from chat.coach.contract import ERROR_MESSAGES
from chat.models import AIUsage, Conversation, Membership, Message
from project.asgi import application
from tests import reliability_report as report
from tests.fakes.fake_openai import Script, reply_tokens
from tests.reliability_report import (
    InProc,
    Page,
    Person,
    Remote,
    Sock,
    assert_no_token_doubled,
    assert_page_matches_db,
    bystander_ok,
    converse,
    norm,
    open_page,
    session_cookie,
    stored_messages,
)
from tests.serverproc import DaphneServer, database_env, free_port

pytest_plugins = ["tests.reliability_report"]
pytestmark = [pytest.mark.django_db(transaction=True)]

# --------------------------------------------------------------------------- people


@pytest.fixture
def ai(settings: Any, fake_openai: Any) -> Any:
    """The real OpenAI SDK against the fake server; quick retries, generous quota."""
    settings.OPENAI_BASE_URL = fake_openai.base_url
    settings.OPENAI_API_KEY = "test-key"
    settings.AI_TIMEOUT_SECONDS = 5.0
    settings.AI_MAX_RETRIES = 1
    settings.AI_DAILY_LIMIT = 50
    settings.STREAM_SAVE_INTERVAL = 0.1
    fake_openai.script = Script(tokens=12)
    fake_openai.clear()
    cache.clear()
    yield fake_openai
    fake_openai.script = Script()


# --------------------------------------------------------------------------- helpers

db = sync_to_async


def page_html(person: Person) -> str:
    """Reload: the conversation page as the server renders it now."""
    client = Client()
    client.cookies[django_settings.SESSION_COOKIE_NAME] = person.cookie
    response = client.get(f"/c/{person.conv.pk}/")
    assert response.status_code == 200
    return response.content.decode()


async def reload_page(person: Person) -> Page:
    page = Page("reload")
    page.load_html(await db(page_html)(person))
    return page


async def wait_idle(timeout: float = 15.0) -> None:
    """Every reply task of this process has finished."""
    deadline = time.monotonic() + timeout
    while tasks.JOBS and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert not tasks.JOBS, f"reply tasks still running: {list(tasks.JOBS)}"


# --------------------------------------------------------------------------- F1


@pytest.mark.asyncio
async def test_f1_browser_closes_mid_reply_ten_times(ai: Any, alice: Person, bob: Person) -> None:
    ai.script = Script(tokens=30, delay=0.015)
    expected = "".join(reply_tokens(30))
    bystander = await open_page(bob, "bob")
    await bystander.quiet(0.1)
    with report.case(
        "F1", "page closed right after the first streamed token; reopened (resync); 10×"
    ) as row:
        for i in range(10):
            page = await open_page(alice, f"alice-{i}")
            # The reopened page catches up: every earlier reply, a growing one as a snapshot.
            # A generous wait: on a loaded machine the previous reply may still be finishing.
            assert await page.until(
                lambda p, i=i: len(p.by_role("assistant")) == i + 1 and not p.streaming(), 30
            ), page.page.summary()
            messages = await db(stored_messages)(alice.conv.pk)
            assert_page_matches_db(page.page, messages)
            assert_no_token_doubled(page.page, messages)
            await page.say(f"Answer number {i}: I led the migration.")
            assert await page.until(lambda p: p.token_frames >= 1, 10), page.page.summary()
            await page.close()  # the tab closes mid-reply
        await wait_idle()

        messages = await db(stored_messages)(alice.conv.pk)
        replies = [m for m in messages if m.role == "assistant" and not m.metadata.get("opening")]
        users = [m for m in messages if m.role == "user"]
        usage = await db(lambda: list(AIUsage.objects.filter(user=alice.user)))()
        reloaded = await reload_page(alice)
        final = await open_page(alice, "alice-final")
        assert await final.until(lambda p: len(p.by_role("assistant")) == 11, 10)
        await final.quiet(0.2)
        records = ai.completions
        row.set(
            result=(
                "every reply stored complete and whole; 10/10 model requests ran to the end "
                "(none cut by the closing tab); no reply task left; reload and resync show all"
            ),
            sent="10 + 10 replies",
            stored=f"{len(users)} + {len(replies)}",
            delivered=f"{len(final.page.by_role('user'))} + "
            f"{len(final.page.by_role('assistant')) - 1}",
        )
        assert len(users) == 10 and len(replies) == 10
        assert all(m.status == "complete" and m.content == expected for m in replies)
        assert all(u.refunded is False and u.outcome == "complete" for u in usage)
        assert len(records) == 10
        assert all(r.completed and not r.client_disconnected for r in records)
        assert not tasks.JOBS
        assert_page_matches_db(final.page, messages)
        assert_page_matches_db(reloaded, messages)
        row.bystander = await bystander_ok(bystander, bob, [alice])
    await bystander.close()
    await final.close()


# --------------------------------------------------------------------------- F2

F2_CASES = {
    "F2a": ("[[fake:status=429]]", "rate_limit", 2, 0, "HTTP 429 on every attempt"),
    "F2b": ("[[fake:status=500]]", "server", 2, 0, "HTTP 500 on every attempt"),
    "F2c": (
        "[[fake:stall=headers,stall_seconds=5]]",
        "timeout",
        2,
        0,
        "no response headers (timeout 0.5 s)",
    ),
    "F2d": (
        "[[fake:tokens=8,delay=3]]",
        "timeout",
        1,
        1,
        "1 token, then 3 s of silence (timeout 0.5 s)",
    ),
    "F2e": ("[[fake:tokens=12,drop_after=5]]", "connection", 1, 5, "TCP cut after 5 tokens"),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case_id", list(F2_CASES))
async def test_f2_model_api_fails(
    ai: Any, settings: Any, alice: Person, bob: Person, case_id: str
) -> None:
    directive, code, attempts, tokens, injected = F2_CASES[case_id]
    settings.AI_TIMEOUT_SECONDS = 0.5
    bystander = await open_page(bob, "bob")
    page = await open_page(alice, "alice")
    await page.quiet(0.1)
    limit = await db(quota.daily_limit)(alice.user)
    with report.case(case_id, injected) as row:
        await page.say(f"Tell me more {directive}")
        assert await page.until(
            lambda p: (
                any(m.kind == "error" for m in p.ordered())
                and "quota" in p.widgets
                and not p.streaming()
            ),
            15,
        ), page.page.summary()
        await wait_idle()
        await page.quiet(0.2)
        messages = await db(stored_messages)(alice.conv.pk)
        reply = next(m for m in messages if m.role == "assistant" and not m.metadata.get("opening"))
        error = next(m for m in messages if m.kind == "error")
        usage = await db(lambda: AIUsage.objects.get(user=alice.user))()
        remaining = await db(quota.remaining)(alice.user)
        records = ai.completions
        partial = "".join(reply_tokens(12 if tokens else 0)[:tokens])
        row.set(
            result=(
                f"reply stored failed with {len(reply.content.split())} word(s) of text; "
                f'notice: "{error.content}"; quota {remaining}/{limit} (credit back); '
                f"{len(records)} model request(s)"
            ),
            sent="1 + 1 reply",
            stored=f"{sum(m.role == 'user' for m in messages)} + 1 (+1 error notice)",
            delivered=f"{len(page.page.by_role('user'))} + "
            f"{len(page.page.by_role('assistant')) - 1} (+{len(page.page.by_role('system'))})",
        )
        assert reply.status == "failed" and reply.metadata.get("error") == code, reply.metadata
        assert reply.content == partial  # nothing doubled, nothing lost
        assert error.content == str(ERROR_MESSAGES[code])
        assert usage.refunded and remaining == limit
        assert page.page.widgets["quota"] == str(limit), page.page.widgets
        assert len(records) == attempts
        assert all(r.finished_at is not None for r in records)  # none left running
        assert_page_matches_db(page.page, messages)
        assert_no_token_doubled(page.page, messages)
        assert_page_matches_db(await reload_page(alice), messages)
        row.bystander = await bystander_ok(bystander, bob, [alice])
    await page.close()
    await bystander.close()


# --------------------------------------------------------------------------- real servers


def server_env(fake: Any, **extra: str) -> dict[str, str]:
    """Environment of a daphne subprocess on this test database and the fake model."""
    env = {
        **database_env(),
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "test-key",
        "AI_TIMEOUT_SECONDS": "5",
        "AI_MAX_RETRIES": "1",
        "AI_DAILY_LIMIT": "50",
        "STREAM_SAVE_INTERVAL": "0.1",
        "MESSAGES_PER_10S": "30",
        "LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


def http_json(url: str) -> tuple[int, dict[str, Any]]:
    import json

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def ws_url(server: DaphneServer, person: Person) -> str:
    return f"ws://127.0.0.1:{server.port}{person.path}"


async def remote(server: DaphneServer, person: Person, name: str) -> Remote:
    sock = await Remote.open(
        ws_url(server, person), cookie=person.cookie_header, origin=server.url, name=name
    )
    assert sock.close_code is None, sock.close_code
    await sock.resync()
    await sock.quiet(0.15)
    return sock


async def keep_synced(
    sock: Remote, server: DaphneServer, person: Person, predicate: Any, timeout: float = 20.0
) -> tuple[Remote, int]:
    """Like a page: read frames, and when the socket drops, reconnect and resync (with
    back-off) until predicate(page) holds. Returns the socket in use and how many reconnects."""
    deadline = time.monotonic() + timeout
    reconnects = 0
    await sock.quiet(0.2)  # notice a close that is already waiting
    while time.monotonic() < deadline:
        if sock.close_code is None:
            if await sock.until(predicate, min(2.0, deadline - time.monotonic())):
                return sock, reconnects
            continue
        await asyncio.sleep(0.3)
        fresh = await Remote.open(
            ws_url(server, person), cookie=person.cookie_header, origin=server.url, name="x"
        )
        if fresh.close_code is not None:
            continue
        fresh.page = sock.page  # the same page, reconnecting: it keeps what it shows
        sock = fresh
        reconnects += 1
        await sock.resync()
    raise AssertionError(f"{sock.page.name} did not catch up: {sock.page.summary()}")


class RedisProc:
    """A private redis-server on a free port (no persistence: a restart starts empty)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProc:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        cmd += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


async def wait_health(server: DaphneServer, status: int, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        code, body = await asyncio.to_thread(http_json, server.url + "/health/detailed/")
        if code == status or time.monotonic() > deadline:
            assert code == status, body
            return body
        await asyncio.sleep(0.2)


async def reply_of(person: Person, timeout: float = 20.0, *, ended: bool = True) -> Message:
    """The newest coach reply (waiting until it ended, when asked)."""
    deadline = time.monotonic() + timeout
    while True:
        messages = await db(stored_messages)(person.conv.pk)
        reply = [m for m in messages if m.role == "assistant"][-1]
        if not ended or reply.status != "streaming" or time.monotonic() > deadline:
            return reply
        await asyncio.sleep(0.1)


# --------------------------------------------------------------------------- F3


@pytest.mark.asyncio
async def test_f3_redis_killed_mid_reply(ai: Any, alice: Person, bob: Person) -> None:
    redis = RedisProc().start()
    env = server_env(ai, REDIS_URL=redis.url, CHANNEL_LAYER_PREFIX=f"rel{os.getpid()}")
    servers = [DaphneServer(env), DaphneServer(env)]
    for server in servers:
        await asyncio.to_thread(server.start)
    p1, p2 = servers
    socks: list[Remote] = []
    try:
        a1 = await remote(p1, alice, "alice@p1")
        a2 = await remote(p2, alice, "alice@p2")
        bystander = await remote(p2, bob, "bob@p2")
        socks += [a1, a2, bystander]
        with report.case(
            "F3",
            "redis-server SIGKILLed 0.2 s into a 3 s reply, restarted empty 1 s later; "
            "2 daphne processes",
        ) as row:
            await a1.say("Tell me more [[fake:tokens=150,delay=0.02]]")
            # Frames cross processes through Redis: the page on the other process streams too.
            assert await a2.until(lambda p: p.token_frames >= 3, 10), a2.page.summary()
            redis.kill()
            down = await wait_health(p1, 503)
            await asyncio.sleep(1.0)
            redis.start()
            up = await wait_health(p1, 200)
            await wait_health(p2, 200)
            reply = await reply_of(alice)
            messages = await db(stored_messages)(alice.conv.pk)

            def synced(page: Page) -> bool:
                return not page.streaming() and len(page.messages) == len(messages)

            a1, r1 = await keep_synced(a1, p1, alice, synced)
            a2, r2 = await keep_synced(a2, p2, alice, synced)
            await a1.quiet(0.2)
            await a2.quiet(0.2)
            socks += [a1, a2]
            row.set(
                result=(
                    f"reply stored {reply.status} ({len(reply.content.split())} words); "
                    f"health 503 (redis {down['services']['redis']['status']}) then 200 "
                    f"(redis {up['services']['redis']['status']}); pages reconnected "
                    f"{r1}× and {r2}× and caught up"
                ),
                sent="1 + 1 reply",
                stored=f"{sum(m.role == 'user' for m in messages)} + "
                f"{sum(m.role == 'assistant' for m in messages) - 1}",
                delivered=" / ".join(
                    f"{len(s.page.by_role('user'))} + {len(s.page.by_role('assistant')) - 1}"
                    for s in (a1, a2)
                ),
            )
            assert down["services"]["redis"]["status"] == "down"
            assert up["services"]["redis"]["status"] == "ok"
            assert reply.status == "complete", reply.metadata
            assert reply.content == "".join(reply_tokens(150))
            for sock in (a1, a2):
                assert_page_matches_db(sock.page, messages)
                assert_no_token_doubled(sock.page, messages)
            bystander, rb = await keep_synced(
                bystander, p2, bob, lambda p: bool(p.messages), timeout=10
            )
            socks.append(bystander)
            took = await converse(bystander, "Still there? I am the bystander.")
            row.bystander = (
                f"{'socket survived' if rb == 0 else f'reconnected {rb}×'}; "
                f"reply in {took:.2f} s after Redis came back"
            )
    finally:
        for sock in socks:
            await sock.close()
        for server in servers:
            await asyncio.to_thread(server.stop)
        redis.kill()


# --------------------------------------------------------------------------- F4


@asynccontextmanager
async def alice_mid_reply(
    env: dict[str, str], alice: Person, bob: Person
) -> AsyncIterator[tuple[DaphneServer, DaphneServer, list[Remote]]]:
    """Two daphne processes: Alice's page on the first, Bob's (the bystander) on the second;
    and a third server, not started, to restart the first on its port."""
    p1 = DaphneServer(env)
    p2 = DaphneServer(env)
    for server in (p1, p2):
        await asyncio.to_thread(server.start)
    restarted = DaphneServer(env, port=p1.port)
    socks: list[Remote] = []
    try:
        socks.append(await remote(p1, alice, "alice@p1"))
        socks.append(await remote(p2, bob, "bob@p2"))
        yield p1, restarted, socks
    finally:
        for sock in socks:
            await sock.close()
        for server in (p1, p2, restarted):
            await asyncio.to_thread(server.stop)


@pytest.mark.asyncio
async def test_f4_daphne_sigterm_mid_reply(ai: Any, alice: Person, bob: Person) -> None:
    env = server_env(ai)
    async with alice_mid_reply(env, alice, bob) as (p1, restarted, socks):
        page, bystander = socks
        with report.case(
            "F4", "SIGTERM to the daphne serving the reply, 0.5 s into a 6 s reply; restart"
        ) as row:
            await page.say("Tell me more [[fake:tokens=300,delay=0.02]]")
            assert await page.until(lambda p: p.token_frames >= 10, 10), page.page.summary()
            started = time.monotonic()
            await asyncio.to_thread(p1.stop, signal.SIGTERM)
            stopped_in = time.monotonic() - started
            exit_code = p1.proc.returncode if p1.proc else None
            reply = await reply_of(alice, timeout=2)
            await page.quiet(0.3)  # whatever the page got before its socket closed
            # The bystander, on another process, kept working the whole time.
            row.bystander = await bystander_ok(bystander, bob, [alice])
            await asyncio.to_thread(restarted.start)
            page, reconnects = await keep_synced(
                page, restarted, alice, lambda p: not p.streaming() and p.by_role("system")
            )
            socks.append(page)
            await page.quiet(0.2)
            messages = await db(stored_messages)(alice.conv.pk)
            error = [m for m in messages if m.kind == "error"]
            usage = await db(lambda: AIUsage.objects.get(user=alice.user))()
            record = next(r for r in ai.completions if "tokens=300" in r.last_user_message)
            row.set(
                result=(
                    f"daphne exited {exit_code} in {stopped_in:.1f} s; reply stored "
                    f"{reply.status} ({reply.metadata.get('error')}) with its "
                    f"{len(reply.content.split())} words so far + notice "
                    f'"{error[0].content if error else ""}"; quota refunded: {usage.refunded}; '
                    f"model request closed: {record.client_disconnected}; the page "
                    f"reconnected to the restarted server and shows it"
                ),
                sent="1 + 1 reply",
                stored=f"{sum(m.role == 'user' for m in messages)} + 1 (+{len(error)} notice)",
                delivered=f"{len(page.page.by_role('user'))} + "
                f"{len(page.page.by_role('assistant')) - 1} (+{len(page.page.by_role('system'))})",
            )
            assert exit_code == 0 and stopped_in < 8
            assert reply.status == "failed" and reply.metadata.get("error") == "interrupted"
            assert reply.content and "".join(reply_tokens(300)).startswith(reply.content)
            assert len(reply.content.split()) >= 10  # at least what the page had seen
            assert len(error) == 1 and usage.refunded
            assert record.client_disconnected and not record.completed
            assert_page_matches_db(page.page, messages)
            assert_no_token_doubled(page.page, messages)
            assert reconnects >= 1


@pytest.mark.asyncio
async def test_f4b_daphne_sigkill_mid_reply(ai: Any, alice: Person, bob: Person) -> None:
    # Saved every 0.1 s while it grows; orphaned once unsaved for 2 s.
    env = server_env(ai, REPLY_STALE_SECONDS="2")
    async with alice_mid_reply(env, alice, bob) as (p1, restarted, socks):
        page, bystander = socks
        with report.case(
            "F4b", "SIGKILL to the daphne serving the reply, mid-reply; restart"
        ) as row:
            await page.say("Tell me more [[fake:tokens=300,delay=0.02]]")
            assert await page.until(lambda p: p.token_frames >= 10, 10), page.page.summary()
            await asyncio.to_thread(p1.stop, signal.SIGKILL)
            killed_at = time.monotonic()
            orphan = await reply_of(alice, ended=False)
            row.bystander = await bystander_ok(bystander, bob, [alice])
            await asyncio.to_thread(restarted.start)
            # The page reconnects at once, while the reply does not look orphaned yet.
            page, reconnects = await keep_synced(page, restarted, alice, lambda p: True)
            assert page.page.streaming(), page.page.summary()
            # Its heartbeats (every 20 s in the browser) name the replies it shows growing.
            for _beat in range(20):
                growing = [m.id for m in page.page.streaming()]
                await page.send({"action": "heartbeat", "streaming": growing})
                if await page.until(lambda p: not p.streaming() and p.by_role("system"), 0.5):
                    break
            ended_in = time.monotonic() - killed_at
            socks.append(page)
            await page.quiet(0.2)
            messages = await db(stored_messages)(alice.conv.pk)
            reply = [m for m in messages if m.role == "assistant"][-1]
            error = [m for m in messages if m.kind == "error"]
            usage = await db(lambda: AIUsage.objects.get(user=alice.user))()
            row.set(
                result=(
                    f"process gone with the reply {orphan.status} ({len(orphan.content.split())}"
                    f" words saved); {ended_in:.1f} s later the reconnecting page found it "
                    f"orphaned: stored {reply.status} ({reply.metadata.get('error')}) with "
                    f'its words + notice "{error[0].content if error else ""}"; '
                    f"quota refunded: {usage.refunded}"
                ),
                sent="1 + 1 reply",
                stored=f"{sum(m.role == 'user' for m in messages)} + 1 (+{len(error)} notice)",
                delivered=f"{len(page.page.by_role('user'))} + "
                f"{len(page.page.by_role('assistant')) - 1} (+{len(page.page.by_role('system'))})",
            )
            assert orphan.status == "streaming" and orphan.content
            assert reply.status == "failed" and reply.metadata.get("error") == "interrupted"
            assert reply.content == orphan.content  # what was saved, nothing lost since
            assert len(error) == 1 and usage.refunded
            assert_page_matches_db(page.page, messages)
            # The page had streamed up to one save interval more than the dead process saved;
            # the final frame on resync replaced it with what is stored.
            streamed = page.page.streamed[str(reply.pk)]
            assert streamed.startswith(reply.content.rstrip()), (streamed, reply.content)
            assert reconnects >= 1


# --------------------------------------------------------------------------- F5


class Retries(logging.Handler):
    """Counts the reply task's "storing its end failed; retrying" warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "storing its end failed" in record.getMessage():
            self.count += 1


class WriteLock:
    """Another writer holding SQLite's write lock (BEGIN IMMEDIATE) for a while."""

    def __init__(self, path: str, seconds: float) -> None:
        self.path = path
        self.seconds = seconds
        self.taken = threading.Event()
        self.released_at = 0.0
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            self.taken.set()
            time.sleep(self.seconds)
            conn.execute("COMMIT")
        finally:
            self.released_at = time.monotonic()
            conn.close()

    async def __aenter__(self) -> WriteLock:
        self.thread.start()
        assert await asyncio.to_thread(self.taken.wait, 5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.thread.join, self.seconds + 5)


@pytest.mark.asyncio
@pytest.mark.parametrize("busy_timeout", [20, 1])
async def test_f5_sqlite_locked_by_another_writer(
    ai: Any, settings: Any, alice: Person, bob: Person, busy_timeout: int
) -> None:
    case_id = "F5a" if busy_timeout == 20 else "F5b"
    if busy_timeout == 1:
        # No checkpoint saves queue up: Alice's send goes first, Bob's final write next.
        settings.STREAM_SAVE_INTERVAL = 30
    retries = Retries()
    logging.getLogger("chat.coach.tasks").addHandler(retries)
    options = connection.settings_dict["OPTIONS"]
    saved = options.get("timeout")
    options["timeout"] = busy_timeout  # shared by the connections the consumers open
    await db(lambda: connection.close())()  # the kept connection was opened with the old timeout
    await asyncio.to_thread(dbasync.shutdown)  # and so were the database pool threads' ones
    bystander = await open_page(bob, "bob")
    page = await open_page(alice, "alice")
    await bystander.quiet(0.1)
    await page.quiet(0.1)
    try:
        with report.case(
            case_id,
            f"a separate sqlite3 connection holds BEGIN IMMEDIATE for 3 s while Alice sends "
            f"and Bob's reply streams and ends (busy timeout {busy_timeout} s)",
        ) as row:
            # Bob's reply streams into the lock and ends inside it (early on, with the short
            # busy timeout, so that storing its end meets the lock and has to be retried).
            tokens = 30 if busy_timeout == 20 else 8
            await bystander.say(f"Go on [[fake:tokens={tokens},delay=0.05]]")
            assert await bystander.until(lambda p: p.token_frames >= 1, 5)
            async with WriteLock(str(connection.settings_dict["NAME"]), 3.0) as lock:
                locked_at = time.monotonic()
                # Bob's page keeps reading meanwhile, as a browser does.
                watcher = asyncio.create_task(bystander.until(lambda p: False, 3.5))
                sent_at = time.monotonic()
                await page.say("My answer while the database is locked.")
                await page.until(lambda p: p.notices or p.composer_cleared, 25)
                answered_in = time.monotonic() - sent_at
            await watcher
            during = sum(locked_at <= t <= lock.released_at for t in bystander.page.token_times)
            refused = bool(page.page.notices)
            if refused:  # the text stayed in the box: the person sends it again
                await page.say("My answer while the database is locked.")
            assert await page.until(
                lambda p: len(p.by_role("assistant")) == 2 and not p.streaming(), 15
            ), page.page.summary()
            assert await bystander.until(
                lambda p: len(p.by_role("assistant")) == 2 and not p.streaming(), 15
            ), bystander.page.summary()
            await wait_idle()
            await page.quiet(0.2)
            await bystander.quiet(0.2)
            messages = await db(stored_messages)(alice.conv.pk)
            bob_messages = await db(stored_messages)(bob.conv.pk)
            users = [m for m in messages if m.role == "user"]
            row.set(
                result=(
                    (
                        f'send refused after {answered_in:.1f} s: "{page.page.notices[0]}" '
                        f"(nothing stored, text kept); sent again after the lock: stored once"
                        if refused
                        else f"send waited {answered_in:.1f} s for the lock, then stored once"
                    )
                    + f"; Bob's reply ended inside the lock and was stored "
                    f"{[m for m in bob_messages if m.role == 'assistant'][-1].status}"
                    + (f" (its final write retried {retries.count}×)" if retries.count else "")
                ),
                sent=f"{2 if refused else 1} attempt(s) + 1 reply",
                stored=f"{len(users)} + {sum(m.role == 'assistant' for m in messages) - 1}",
                delivered=f"{len(page.page.by_role('user'))} + "
                f"{len(page.page.by_role('assistant')) - 1}",
                bystander=f"{during} token frames streamed while the lock was held; "
                "its reply stored complete after",
            )
            assert len(users) == 1  # never a duplicate, never lost
            if busy_timeout == 20:
                assert not refused and 2.5 < answered_in < 6, answered_in
                assert lock.released_at - locked_at >= 2.9
            else:
                assert refused and answered_in < 2.5
                assert "not sent" in page.page.notices[0]
                assert retries.count >= 1  # Bob's final write met the lock and was retried
            assert during >= tokens // 2  # the other conversation kept streaming
            assert all(m.status == "complete" for m in messages + bob_messages)
            assert_page_matches_db(page.page, messages)
            assert_page_matches_db(bystander.page, bob_messages)
    finally:
        logging.getLogger("chat.coach.tasks").removeHandler(retries)
        options["timeout"] = saved
        await db(lambda: connection.close())()
        await asyncio.to_thread(dbasync.shutdown)
        await page.close()
        await bystander.close()


# --------------------------------------------------------------------------- F6


@dataclass
class Member:
    """Someone in the room."""

    user: Any
    cookie: str
    room: Any

    @property
    def path(self) -> str:
        return f"/ws/chat/{self.room.pk}/"

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return Person(self.user, self.room, self.cookie).headers

    @property
    def cookie_header(self) -> str:
        return f"{django_settings.SESSION_COOKIE_NAME}={self.cookie}"


@pytest.fixture
def room(make_user: Any) -> list[Member]:
    """A public room: Alice (owner), Bob and Carol."""
    users = [make_user(nickname=name) for name in ("Alice", "Bob", "Carol")]
    conv = Conversation.objects.create(
        kind=Conversation.Kind.ROOM, title="Reliability room", owner=users[0], is_public=True
    )
    for i, user in enumerate(users):
        role = Membership.Role.OWNER if i == 0 else Membership.Role.MEMBER
        Membership.objects.create(conversation=conv, user=user, role=role)
    return [Member(user, session_cookie(user), conv) for user in users]


def post_burst(room: Any, author: Any, n: int) -> list[Message]:
    return [
        conversations.message_create(conversation=room, author=author, content=f"Burst message {i}")
        for i in range(n)
    ]


async def room_said(sock: Sock, text: str, timeout: float = 10.0) -> float:
    """Post in the room; seconds until the sender's own page shows it."""
    started = time.monotonic()
    await sock.say(text)
    assert await sock.until(lambda p: any(norm(m.body) == text for m in p.ordered()), timeout)
    return time.monotonic() - started


@pytest.mark.asyncio
async def test_f6a_member_channel_over_capacity(settings: Any, room: list[Member]) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 3}}
    }
    cache.clear()
    alice, bob, carol = room
    socks = []
    for member, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        sock = await InProc.open(application, member.path, member.headers, name)
        await sock.resync()
        await sock.quiet(0.1)
        socks.append(sock)
    a, b, c = socks
    with report.case(
        "F6a",
        "channel capacity 3; 20 messages published at the same instant (a busy room), "
        "then one more; Carol's socket drops and reconnects in between",
    ) as row:
        burst = await db(post_burst)(alice.room, alice.user, 20)
        layer = get_channel_layer()
        group = events.conv_group(alice.room.pk)
        # All at once, as when many people post in the same instant: every send lands
        # before any consumer gets to read its channel.
        await asyncio.gather(
            *(
                layer.group_send(group, events.frame(frames.message_appended(m), seq=m.seq))
                for m in burst
            )
        )
        # Carol's page reads what its channel kept, then its socket drops for a moment.
        await c.quiet(0.2)
        carol_live = len(c.page.messages)
        await c.close()
        took = await room_said(a, "After the burst")
        messages = await db(stored_messages)(alice.room.pk)
        assert await b.until(lambda p: len(p.messages) == len(messages), 5), b.page.summary()
        c2 = await InProc.open(application, carol.path, carol.headers, "carol-again")
        c2.page = c.page
        await c2.resync()
        assert await c2.until(lambda p: len(p.messages) == len(messages), 5), c2.page.summary()
        for sock in (a, b, c2):
            await sock.quiet(0.2)
        row.set(
            result=(
                f"the layer dropped what did not fit: Carol's page got {carol_live} of the "
                f"20 live; Alice's and Bob's consumers saw the next frame's seq gap and filled "
                f"{a.page.largest_batch} and {b.page.largest_batch} from the database; "
                f"Carol's reconnect resynced {c2.page.largest_batch} from her last seq; "
                "every page has all 21, in order, once"
            ),
            sent="21",
            stored=str(len(messages)),
            delivered=" / ".join(str(len(s.page.messages)) for s in (a, b, c2)),
            bystander=f"Bob's page (same room) complete; Alice's next post shown in {took:.2f} s",
        )
        assert len(messages) == 21
        assert carol_live <= 3  # the channel really overflowed
        assert a.page.largest_batch >= 16 and b.page.largest_batch >= 16
        assert c2.page.largest_batch >= 17
        for sock in (a, b, c2):
            assert_page_matches_db(sock.page, messages)
        assert took < 1.0
    for sock in (a, b, c2):
        await sock.close()


@pytest.mark.asyncio
async def test_f6b_member_page_stops_reading(ai: Any, room: list[Member]) -> None:
    alice, bob, carol = room
    server = DaphneServer(
        server_env(
            ai, MESSAGES_PER_10S="1000", SOCKET_FRAMES_PER_SECOND="1000", CHANNEL_CAPACITY="50"
        )
    )
    await asyncio.to_thread(server.start)
    url = f"ws://127.0.0.1:{server.port}{alice.path}"
    socks: list[Remote] = []
    try:
        for member, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            sock = await Remote.open(url, cookie=member.cookie_header, origin=server.url, name=name)
            assert sock.close_code is None
            await sock.resync()
            await sock.quiet(0.15)
            socks.append(sock)
        a, b, c = socks
        with report.case(
            "F6b",
            "Carol's socket stops reading (raw client) while Alice posts 60 messages of 3.9 KB; "
            "then Carol reads again and resyncs",
        ) as row:
            filler = "x" * 3900
            baseline = [await room_said(a, f"warm-up {i}") for i in range(5)]
            latencies = []
            bob_lag = []
            for i in range(60):
                text = f"message {i} {filler}"
                latencies.append(await room_said(a, text))
                started = time.monotonic()
                assert await b.until(lambda p, t=text: any(m.body == t for m in p.ordered()), 5)
                bob_lag.append(time.monotonic() - started)
            messages = await db(stored_messages)(alice.room.pk)
            # Carol comes back: reads what was buffered, then resyncs from what she shows.
            await c.quiet(0.3, limit=20)
            await c.resync()
            assert await c.until(lambda p: len(p.messages) == len(messages), 10), c.page.summary()
            await c.quiet(0.2)
            slowest = max(latencies)
            row.set(
                result=(
                    f"Alice's posts shown to her in median {sorted(latencies)[30] * 1000:.0f} ms "
                    f"(max {slowest * 1000:.0f} ms; before: max "
                    f"{max(baseline) * 1000:.0f} ms); Carol then received every message once"
                ),
                sent=str(5 + 60),
                stored=str(len(messages)),
                delivered=" / ".join(str(len(s.page.messages)) for s in (a, b, c)),
                bystander=f"Bob (same room) saw each post within {max(bob_lag) * 1000:.0f} ms "
                "of Alice",
            )
            assert len(messages) == 65
            for sock in (a, b, c):
                assert_page_matches_db(sock.page, messages)
            assert slowest < 1.0 and max(bob_lag) < 1.0
    finally:
        for sock in socks:
            await sock.close()
        await asyncio.to_thread(server.stop)
