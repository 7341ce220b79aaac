"""The practice socket end to end: consumer, reply task, the real openai SDK, the fake model.

Frames are read the way the htmx ws extension would apply them, so a test can rebuild what
the page shows from the frames it got and compare it with what the database stored.
"""

from __future__ import annotations

import asyncio
import html as htmllib
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from html.parser import HTMLParser
from typing import Any

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from django.test import Client

from chat import events
from chat.coach import providers, tasks
from chat.models import AIUsage, Conversation, Message
from chat.practice import services as practice_services
from chat.routing import websocket_urlpatterns
from tests.conftest import use_fake_model
from tests.fakes.fake_openai import FakeOpenAIServer, Script, reply_tokens

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

# The consumer as project/asgi.py routes it; the user is put in the scope directly.
application = URLRouter(websocket_urlpatterns)
TOKEN_RE = re.compile(
    r'<span hx-swap-oob="beforeend:#message-(?P<id>[0-9a-f-]+)-body">(?P<text>.*?)</span>', re.S
)
QUOTA_RE = re.compile(r'data-testid="quota" id="quota">(\d+)</strong>/(\d+)')


@pytest.fixture(autouse=True)
def practice_settings(settings):
    """Quick users and streaming; no model configured (tests opt in to the fake server)."""
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""
    settings.OFFLINE_TOKEN_DELAY = 0.0
    settings.AI_DAILY_LIMIT = 5
    settings.MESSAGES_PER_10S = 100
    settings.STREAM_FLUSH_INTERVAL = 0.02
    settings.STREAM_SAVE_INTERVAL = 0.05
    cache.clear()
    return settings


@pytest.fixture
def model(practice_settings, fake_openai: FakeOpenAIServer) -> FakeOpenAIServer:
    """The real openai SDK against the fake server: fast failures, one retry."""
    return use_fake_model(practice_settings, fake_openai, AI_TIMEOUT_SECONDS=0.5)


@pytest_asyncio.fixture(autouse=True)
async def replies_end(practice_settings) -> AsyncIterator[None]:
    """Every reply a test started has ended (and its SDK client closed) before the next test."""
    yield
    await replies_done()
    await providers.get_provider().aclose()


async def replies_done(timeout: float = 5) -> None:
    running = [job.task for job in list(tasks.JOBS.values()) if job.task is not None]
    if running:
        done, pending = await asyncio.wait(running, timeout=timeout)
        assert not pending, "a reply did not end"


@pytest.fixture
def learner(make_user):
    return make_user(nickname="Min-ji")


@pytest.fixture
def conversation(learner, persona):
    return practice_services.practice_start(user=learner, persona=persona)


class Page:
    """One open conversation page, speaking the htmx ws extension's JSON."""

    def __init__(self, user: Any, conversation_id: Any, app: Any = application, **kw: Any) -> None:
        self.comm = WebsocketCommunicator(app, f"/ws/chat/{conversation_id}/", **kw)
        if user is not None:
            self.comm.scope["user"] = user
        self.frames: list[str] = []

    async def open(self, last_seq: int = 1) -> Page:
        """Connect and say what the page has (by default: the coach's opening line)."""
        connected, _ = await self.comm.connect()
        assert connected
        await self.send(action="resync", last_seq=last_seq)
        await self.until('id="quota-box"')  # the last thing a resync sends
        self.frames.pop()  # tests count the quota frames their own actions cause
        return self

    async def send(self, **payload: Any) -> None:
        await self.comm.send_json_to({**payload, "HEADERS": {"HX-Request": "true"}})

    async def say(self, text: str) -> None:
        await self.send(action="send", message=text)

    async def next(self, timeout: float = 3) -> str:
        frame = await self.comm.receive_from(timeout)
        self.frames.append(frame)
        return frame

    async def until(self, match: str | Callable[[str], bool], timeout: float = 5) -> str:
        """Read frames until one contains `match` (or satisfies it); returns that one."""
        test = match if callable(match) else (lambda frame: match in frame)
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.next(max(0.05, deadline - time.monotonic()))
            if test(frame):
                return frame

    async def until_final(self, message_id: Any, timeout: float = 5) -> str:
        """The frame that replaces the reply once it has ended."""
        return await self.until(lambda f: is_final(f, message_id), timeout)

    async def closed_with(self, timeout: float = 3) -> int:
        while True:
            output = await self.comm.receive_output(timeout)
            if output["type"] == "websocket.close":
                return output["code"]

    async def quiet(self, timeout: float = 0.2) -> bool:
        return await self.comm.receive_nothing(timeout)

    async def close(self) -> None:
        await self.comm.disconnect()

    def tokens(self, message_id: Any) -> list[str]:
        """The streamed text of a reply, frame by frame."""
        return [
            htmllib.unescape(m["text"])
            for frame in self.frames
            for m in TOKEN_RE.finditer(frame)
            if m["id"] == str(message_id)
        ]

    def shown(self, message_id: Any, frames: list[str] | None = None) -> str:
        """What the page shows in a reply's body: the latest full render plus tokens since."""
        text = ""
        for frame in self.frames if frames is None else frames:
            if f'id="message-{message_id}-body"' in frame:
                text = body_text(frame, message_id)
            text += "".join(
                htmllib.unescape(m["text"])
                for m in TOKEN_RE.finditer(frame)
                if m["id"] == str(message_id)
            )
        return text


def is_final(frame: str, message_id: Any) -> bool:
    return frame.startswith(f'<article id="message-{message_id}"') and (
        'data-status="streaming"' not in frame
    )


def body_html(frame: str, message_id: Any) -> str:
    found = re.search(rf'id="message-{message_id}-body"[^>]*>(.*?)</div>', frame, re.S)
    assert found, frame
    return found[1]


def body_text(frame: str, message_id: Any) -> str:
    return htmllib.unescape(body_html(frame, message_id).replace("<br>", "\n")).strip()


class Elements(HTMLParser):
    """Every element of a fragment, as the browser would parse it: (tag, attributes)."""

    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(fragment)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    def attributes(self) -> list[tuple[str, str, str | None]]:
        return [(tag, name, value) for tag, attrs in self.found for name, value in attrs.items()]


def attr(frame: str, name: str) -> str:
    found = re.search(rf'{name}="([^"]*)"', frame)
    assert found, frame
    return found[1]


def quota_shown(frame: str) -> tuple[int, int] | None:
    found = QUOTA_RE.search(frame)
    return (int(found[1]), int(found[2])) if found else None


@database_sync_to_async
def latest(conversation: Conversation, role: str = Message.Role.ASSISTANT) -> Message:
    return Message.objects.filter(conversation=conversation, role=role).latest("seq")


@database_sync_to_async
def all_messages(conversation: Conversation) -> list[tuple[str, str, str, str]]:
    return list(
        Message.objects.filter(conversation=conversation)
        .order_by("seq")
        .values_list("role", "kind", "status", "content")
    )


@database_sync_to_async
def remaining(user: Any) -> int:
    from chat.coach import quota

    user.refresh_from_db()
    return quota.remaining(user)


async def reply_id(page: Page) -> str:
    """Wait for the new reply's own frame; returns its message id."""
    frame = await page.until('data-role="assistant" data-status="streaming"')
    return attr(frame.split('data-role="assistant"')[0].rsplit("<article", 1)[1], "id")[8:]


async def refused_with(user: Any, conversation_id: Any) -> int:
    page = Page(user, conversation_id)
    try:
        connected, _ = await page.comm.connect()
        assert connected  # accepted, then closed with a reason the page can read
        return await page.closed_with()
    finally:
        await page.close()


# --- who may connect --------------------------------------------------------------------------


async def test_not_signed_in_is_4401_through_the_whole_stack(conversation):
    from project.asgi import application as full_app

    page = Page(
        None,
        conversation.pk,
        full_app,
        headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")],
    )
    try:
        connected, _ = await page.comm.connect()
        assert connected
        assert await page.closed_with() == 4401
    finally:
        await page.close()


async def test_signed_in_by_session_cookie_through_the_whole_stack(learner, conversation):
    from project.asgi import application as full_app

    client = Client()
    await database_sync_to_async(client.force_login)(learner)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    page = Page(
        None,
        conversation.pk,
        full_app,
        headers=[(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)],
    )
    try:
        await page.open(last_seq=0)
        frame = page.frames[0]  # what the resync caught up with
        assert conversation.persona.opening_line[:20] in htmllib.unescape(frame)
    finally:
        await page.close()


async def test_someone_elses_practice_looks_exactly_like_no_conversation(make_user, conversation):
    stranger = await database_sync_to_async(make_user)(nickname="Stranger")

    assert await refused_with(stranger, conversation.pk) == 4404
    assert await refused_with(stranger, uuid.uuid4()) == 4404


# --- a reply, frame by frame ------------------------------------------------------------------


async def test_send_streams_the_reply_token_by_token_then_replaces_it_whole(
    model, learner, conversation
):
    # A fast model (2 ms a token, under STREAM_IDLE_GAP): its tokens are batched by time.
    model.script = Script(tokens=30, delay=0.002)
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say("I led a team of four to ship early.")

        cleared = await page.next()
        user_frame = await page.next()
        reply_frame = await page.next()
        rid = attr(reply_frame, "article id")[8:]
        final = await page.until_final(rid)
    finally:
        await page.close()

    assert 'id="composer-input"' in cleared and "></textarea>" in cleared
    assert user_frame.startswith('<div hx-swap-oob="beforeend:#messages">')
    assert 'data-role="user"' in user_frame and "ship early" in user_frame
    assert reply_frame.startswith('<div hx-swap-oob="beforeend:#messages">')
    assert 'data-role="assistant" data-status="streaming"' in reply_frame
    expected = "".join(reply_tokens(30))
    streamed = page.tokens(rid)
    # Batched by time, not one frame per token; the final frame carries whatever was pending.
    assert 1 < len(streamed) < 30
    assert expected.startswith("".join(streamed))
    assert final.startswith(f'<article id="message-{rid}"')
    assert 'hx-swap-oob="true"' in final  # outerHTML: the whole message
    assert attr(final, "data-status") == "complete"
    assert body_text(final, rid) == f"<p>{expected}</p>"
    assert [quota_shown(f) for f in page.frames if quota_shown(f)] == [(4, 5)]
    reply = await latest(conversation)
    assert (str(reply.pk), reply.status, reply.content) == (rid, "complete", expected)
    assert reply.metadata["completion_tokens"] == 30
    assert reply.metadata["ttft_ms"] is not None
    assert await remaining(learner) == 4
    sent = model.last
    assert sent.messages[-1] == {"role": "user", "content": "I led a team of four to ship early."}
    assert sent.messages[0]["role"] == "system"


async def test_stop_mid_reply_keeps_the_partial_text_and_hangs_up_on_the_model(
    model, learner, conversation
):
    model.script = Script(tokens=400, delay=0.01)
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say("Tell me more.")
        rid = await reply_id(page)
        await page.until(f"#message-{rid}-body")
        await page.send(action="stop")
        final = await page.until_final(rid)
    finally:
        await page.close()

    assert attr(final, "data-status") == "stopped"
    assert "Stopped." in final
    reply = await latest(conversation)
    full = "".join(reply_tokens(400))
    assert reply.status == "stopped"
    assert reply.content and full.startswith(reply.content) and reply.content != full
    assert body_text(final, rid) == f"<p>{reply.content}</p>"
    assert await model.await_until(lambda rs: rs[-1].client_disconnected, timeout=3)
    record = model.last
    assert not record.completed and record.tokens_sent < 400
    assert await remaining(learner) == 4  # a stopped reply still counts


async def test_stop_pressed_twice_still_ends_the_reply_on_the_page(model, learner, conversation):
    model.script = Script(tokens=400, delay=0.01)
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say("Tell me more.")
        rid = await reply_id(page)
        await page.until(f"#message-{rid}-body")
        await page.send(action="stop")
        await page.send(action="stop")
        final = await page.until_final(rid)
    finally:
        await page.close()

    assert attr(final, "data-status") == "stopped"
    assert (await latest(conversation)).status == "stopped"


async def test_stop_before_the_first_token_ends_the_reply_empty(model, learner, conversation):
    model.script = Script(tokens=20, first_token_delay=2)
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say("Quick, stop.")
        rid = await reply_id(page)
        await model.await_until(lambda rs: bool(rs), timeout=3)
        await page.send(action="stop")
        final = await page.until_final(rid)
    finally:
        await page.close()

    assert attr(final, "data-status") == "stopped"
    reply = await latest(conversation)
    assert (reply.status, reply.content) == ("stopped", "")
    assert await model.await_until(lambda rs: rs[-1].client_disconnected, timeout=3)


async def test_stop_from_another_tab_of_the_same_learner_works(model, learner, conversation):
    model.script = Script(tokens=400, delay=0.01)
    writer = await Page(learner, conversation.pk).open()
    other = await Page(learner, conversation.pk).open()
    try:
        await writer.say("Tell me more.")
        rid = await reply_id(writer)
        await writer.until(f"#message-{rid}-body")
        await other.send(action="stop")
        final = await writer.until_final(rid)
    finally:
        await writer.close()
        await other.close()

    assert attr(final, "data-status") == "stopped"


async def test_regenerate_replaces_the_last_reply(model, learner, conversation):
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say("Here is my answer.")
        first = await reply_id(page)
        await page.until_final(first)
        model.script = Script(text="A different, better reply.")

        await page.send(action="regenerate")
        deleted = await page.until('hx-swap-oob="delete"')
        second = await reply_id(page)
        final = await page.until_final(second)
    finally:
        await page.close()

    assert deleted == f'<div id="message-{first}" hx-swap-oob="delete"></div>'
    assert second != first
    assert body_text(final, second) == "<p>A different, better reply.</p>"
    assert await all_messages(conversation) == [
        ("assistant", "text", "complete", conversation.persona.opening_line),
        ("user", "text", "complete", "Here is my answer."),
        ("assistant", "text", "complete", "A different, better reply."),
    ]
    assert await remaining(learner) == 3
    # The model was asked again with the same history, not with the old reply in it.
    assert model.last.messages[-1] == {"role": "user", "content": "Here is my answer."}


async def test_sending_while_the_coach_answers_is_refused_and_the_text_stays(
    model, learner, conversation
):
    model.script = Script(tokens=100, delay=0.01)
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say("First.")
        rid = await reply_id(page)
        await page.say("Second, too soon.")
        notice = await page.until('data-testid="notice"')
        await page.send(action="stop")
        await page.until_final(rid)
    finally:
        await page.close()

    assert "still answering" in notice
    assert 'id="composer-input"' not in notice
    assert not [m for m in await all_messages(conversation) if m[3] == "Second, too soon."]


async def test_with_no_replies_left_the_answer_gets_its_analysis_and_a_notice(
    learner, conversation
):
    learner.daily_ai_limit = 0
    await database_sync_to_async(learner.save)()
    before = await all_messages(conversation)
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say("Please analyse this text.")
        # The notice goes to this page, the answer to the group: either may come first.
        while not (
            any("used all of today" in htmllib.unescape(f) for f in page.frames)
            and any('data-role="user"' in f for f in page.frames)
        ):
            await page.next()
        await page.quiet()
    finally:
        await page.close()

    appended = next(f for f in page.frames if 'data-role="user"' in f)
    assert 'data-testid="feedback"' in appended and 'data-status="analysed"' in appended
    assert 'data-role="assistant"' not in "".join(page.frames)  # no reply opened
    assert await all_messages(conversation) == [
        *before,
        ("user", "text", "complete", "Please analyse this text."),
    ]
    assert not await database_sync_to_async(AIUsage.objects.exists)()


# --- when the model fails -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("directive", "code", "readable"),
    [
        ("[[fake:status=401]]", "auth", "rejected our key"),
        ("[[fake:status=429]]", "rate_limit", "rate limit"),
        ("[[fake:status=500]]", "server", "problem on its side"),
        ("[[fake:stall]]", "timeout", "took too long"),
        ("[[fake:drop_after=5]]", "connection", "connection to the AI service broke"),
    ],
)
async def test_a_failed_reply_keeps_its_text_explains_and_refunds(
    model, learner, conversation, directive, code, readable
):
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say(f"My answer {directive}")
        rid = await reply_id(page)
        final = await page.until_final(rid)
        error = await page.until('data-kind="error"')
        refund = await page.until(lambda f: quota_shown(f) == (5, 5))
    finally:
        await page.close()

    partial = "".join(reply_tokens(5)) if "drop_after" in directive else ""
    assert attr(final, "data-status") == "failed"
    assert "This reply did not finish." in final
    reply = await latest(conversation)
    assert (reply.status, reply.content, reply.metadata["error"]) == ("failed", partial, code)
    # Shown once, no doubling, nothing lost: the streamed text leads up to the kept text.
    assert partial.startswith("".join(page.tokens(rid)))
    assert page.shown(rid) == (f"<p>{partial}</p>" if partial else "")
    messages = await all_messages(conversation)
    assert messages[-1][:3] == ("system", "error", "complete")
    assert readable in messages[-1][3]
    assert "[" not in messages[-1][3] and "Error" not in messages[-1][3]  # no codes, no tracebacks
    assert readable in htmllib.unescape(error)
    assert refund
    assert await remaining(learner) == 5


async def test_a_failure_after_retries_asks_the_model_twice_at_most(model, learner, conversation):
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say("Hello [[fake:status=500]]")
        await page.until_final(await reply_id(page))
    finally:
        await page.close()

    assert len(model.completions) == 2  # AI_MAX_RETRIES = 1


# --- the reply does not belong to one socket ----------------------------------------------------


async def test_a_reply_keeps_going_after_the_page_closes(model, learner, conversation):
    model.script = Script(tokens=40, delay=0.01)
    page = await Page(learner, conversation.pk).open()
    await page.say("I am closing the tab now.")
    rid = await reply_id(page)
    await page.until(f"#message-{rid}-body")
    await page.close()

    await replies_done()

    reply = await latest(conversation)
    assert (str(reply.pk), reply.status) == (rid, "complete")
    assert reply.content == "".join(reply_tokens(40))
    assert not model.last.client_disconnected


async def test_a_growing_reply_is_saved_as_it_grows(model, learner, conversation):
    model.script = Script(tokens=100, delay=0.01)
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say("Go on.")
        rid = await reply_id(page)
        deadline = time.monotonic() + 3
        saved = ""
        while not saved and time.monotonic() < deadline:
            await page.next()
            reply = await latest(conversation)
            saved = reply.content if reply.status == "streaming" else ""
        await page.until_final(rid)
    finally:
        await page.close()

    assert saved and "".join(reply_tokens(100)).startswith(saved)


@pytest.mark.parametrize("page_has", ["the opening line", "the streaming reply"])
async def test_a_page_joining_mid_reply_catches_up_and_ends_with_the_same_text(
    model, learner, conversation, page_has
):
    model.script = Script(tokens=80, delay=0.01)
    first = await Page(learner, conversation.pk).open()
    late = None
    try:
        await first.say("Catch me up.")
        rid = await reply_id(first)
        for _ in range(3):
            await first.until(f"#message-{rid}-body")
        reply = await latest(conversation)
        late = await Page(learner, conversation.pk).open(
            last_seq=1 if page_has == "the opening line" else reply.seq
        )
        first_final = await first.until_final(rid)
        late_final = await late.until_final(rid)
    finally:
        await first.close()
        if late is not None:
            await late.close()

    expected = "".join(reply_tokens(80))
    assert body_text(first_final, rid) == body_text(late_final, rid) == f"<p>{expected}</p>"
    # Before the final frame each page showed a consistent reply: no gap, no doubled tokens.
    for page in (first, late):
        so_far = page.shown(rid, page.frames[: page.frames.index(late_final)])
        assert expected.startswith(so_far)
        assert len(so_far) > len(reply_tokens(80)[0])
    if page_has == "the opening line":
        assert 'data-role="user"' in late.frames[0]  # the missed question came first


async def test_a_lost_token_frame_makes_the_page_ask_for_a_snapshot_not_skip_text(
    model, learner, conversation, settings, monkeypatch
):
    settings.STREAM_FLUSH_INTERVAL = 0  # a frame per token, as when the run lost frames
    model.script = Script(tokens=60, delay=0.005)
    publish = events.publish_safely
    lost: list[dict[str, Any]] = []

    async def lossy(group: str, event: dict[str, Any]) -> bool:
        if event.get("part") == 5 and not event.get("snapshot") and not lost:
            lost.append(event)  # what group_send does past a channel's capacity: nothing
            return True
        return await publish(group, event)

    monkeypatch.setattr(events, "publish_safely", lossy)
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say("Tell me more.")
        rid = await reply_id(page)
        final = await page.until_final(rid)
    finally:
        await page.close()

    expected = "".join(reply_tokens(60))
    assert (await latest(conversation)).content == expected
    assert lost
    before_final = page.frames[: page.frames.index(final)]
    snapshots = [f for f in before_final if f.startswith(f'<article id="message-{rid}"')]
    assert len(snapshots) == 1 and 'data-status="streaming"' in snapshots[0]
    # At every moment the page showed a prefix of the reply (never text after a hole), and
    # with the token frames after the snapshot it shows exactly the saved text.
    for n in range(len(before_final) + 1):
        assert expected.startswith(page.shown(rid, before_final[:n]))
    assert page.shown(rid, before_final) == expected
    assert body_text(final, rid) == f"<p>{expected}</p>"


async def test_markdown_from_the_model_is_sanitised_in_the_final_frame(
    model, learner, conversation
):
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say("Advice please [[fake:markdown]]")
        rid = await reply_id(page)
        final = await page.until_final(rid)
    finally:
        await page.close()

    body = body_html(final, rid)
    assert "<strong>bold</strong>" in body and "<li>first point</li>" in body
    assert '<code class="language-python">' in body
    # The hostile parts are inert text now; no element or attribute came from them.
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "<img" not in body and "<script" not in body
    elements = Elements(body)
    assert {tag for tag, _attrs in elements.found} <= {"p", "strong", "ul", "li", "pre", "code"}
    assert elements.attributes() == [("code", "class", "language-python")]
    # In the whole frame only the message itself swaps, and only it (and its body) have ids.
    frame = Elements(final).attributes()
    assert [(t, n) for t, n, _v in frame if n.startswith(("hx-", "ws-"))] == [
        ("article", "hx-swap-oob"),
        ("div", "hx-disable"),
    ]
    assert [v for _t, n, v in frame if n == "id"] == [f"message-{rid}", f"message-{rid}-body"]
    assert not [v for _t, n, v in frame if n == "href" and "javascript" in (v or "")]
    # While streaming, the same text went out escaped: each token frame is one bare span.
    for token_frame in (f for f in page.frames if TOKEN_RE.search(f)):
        assert [tag for tag, _attrs in Elements(token_frame).found] == ["span"]


# --- the offline coach --------------------------------------------------------------------------


async def test_offline_coach_asks_the_personas_next_question(learner, conversation):
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say("I am a designer with five years of experience in fintech apps.")
        rid = await reply_id(page)
        final = await page.until_final(rid)
    finally:
        await page.close()

    first_question = conversation.persona.question_bank[0]
    assert attr(final, "data-status") == "complete"
    assert body_text(final, rid).endswith(f"{first_question}</p>")
    assert page.tokens(rid)  # streamed first
    reply = await latest(conversation)
    assert reply.metadata["model"] == "offline"


# --- refusals keep the text ---------------------------------------------------------------------


async def test_a_message_too_long_is_refused_and_nothing_is_stored(
    learner, conversation, practice_settings
):
    practice_settings.MAX_MESSAGE_LENGTH = 20
    before = await all_messages(conversation)
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say("x" * 21)
        notice = await page.next()
        await page.say("   ")
        empty = await page.next()
        assert await page.quiet()
    finally:
        await page.close()

    assert "too long" in notice and 'id="composer-input"' not in notice
    assert "Type a message first." in empty
    assert await all_messages(conversation) == before


async def test_regenerate_with_no_replies_left_keeps_the_reply(learner, conversation):
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say("My answer.")
        rid = await reply_id(page)
        await page.until_final(rid)
        await database_sync_to_async(type(learner).objects.filter(pk=learner.pk).update)(
            daily_ai_limit=1
        )

        await page.send(action="regenerate")
        notice = await page.until('data-testid="notice"')
    finally:
        await page.close()

    assert "used all of today's AI replies" in htmllib.unescape(notice)
    assert str((await latest(conversation)).pk) == rid


async def test_deleting_a_conversation_mid_reply_hangs_up_on_the_model(
    model, learner, conversation
):
    model.script = Script(tokens=400, delay=0.01)
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say("Go on and on.")
        rid = await reply_id(page)
        await page.until(f"#message-{rid}-body")
        client = Client()
        await database_sync_to_async(client.force_login)(learner)

        response = await database_sync_to_async(client.post)(f"/c/{conversation.pk}/delete/")

        assert response.status_code == 302
        assert await model.await_until(lambda rs: rs[-1].client_disconnected, timeout=3)
    finally:
        await page.close()
    await replies_done()
    assert not await database_sync_to_async(Message.objects.filter(pk=rid).exists)()
    assert await remaining(learner) == 4


async def test_a_reconnecting_page_gets_the_quota_as_it_stands_now(learner, conversation):
    """A refund or a new limit decided while the socket was down reaches the page on resync."""
    from accounts.models import User

    await database_sync_to_async(
        lambda: User.objects.filter(pk=learner.pk).update(daily_ai_limit=9)
    )()
    page = Page(learner, conversation.pk)  # its scope still holds the old user row
    connected, _ = await page.comm.connect()
    assert connected
    try:
        await page.send(action="resync", last_seq=1)
        frame = await page.until('id="quota-box"')
    finally:
        await page.close()

    assert 'id="quota">9</strong>/9' in frame
