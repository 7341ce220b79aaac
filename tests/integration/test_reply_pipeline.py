"""The reply task on its own: stop and snapshot requests, crashes, and time to first token."""

from __future__ import annotations

import asyncio
import html
import re
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from chat import events, frames
from chat.coach import providers, quota, replies, tasks
from chat.models import AIUsage, Message
from chat.practice import services as practice_services
from tests.conftest import use_fake_model
from tests.fakes.fake_openai import FakeOpenAIServer, Script, reply_tokens

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture(autouse=True)
def model(settings, fake_openai: FakeOpenAIServer) -> FakeOpenAIServer:
    """The real openai SDK against the fake server."""
    return use_fake_model(
        settings,
        fake_openai,
        AI_TIMEOUT_SECONDS=2,
        AI_DAILY_LIMIT=20,
        STREAM_FLUSH_INTERVAL=0.02,
        STREAM_SAVE_INTERVAL=0.05,
    )


@pytest_asyncio.fixture(autouse=True)
async def replies_end(model) -> AsyncIterator[None]:
    yield
    running = [job.task for job in list(tasks.JOBS.values()) if job.task is not None]
    if running:
        _done, pending = await asyncio.wait(running, timeout=5)
        assert not pending, "a reply did not end"
    await providers.get_provider().aclose()


@pytest.fixture
def learner(make_user):
    return make_user(nickname="Min-ji")


@pytest.fixture
def conversation(learner, persona):
    return practice_services.practice_start(user=learner, persona=persona)


class Listener:
    """A socket's view of the conversation group: every event, in order."""

    def __init__(self, conversation_id: Any) -> None:
        self.group = events.conv_group(conversation_id)
        self.events: list[dict[str, Any]] = []

    async def __aenter__(self) -> Listener:
        self.layer = get_channel_layer()
        self.channel = await self.layer.new_channel("test.")
        await self.layer.group_add(self.group, self.channel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.layer.group_discard(self.group, self.channel)

    async def until(self, key: str, timeout: float = 5) -> dict[str, Any]:
        """Events until one has `key` (e.g. "final", "snapshot", "stream")."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.layer.receive(self.channel)
                self.events.append(event)
                if event.get(key):
                    return event


async def start(learner, conversation, text: str = "My answer.") -> tasks.ReplyJob:
    exchange = await database_sync_to_async(replies.exchange_start)(
        user=learner, conversation=conversation, text=text, ask_ai=True, require_ai=True
    )
    job = tasks.ReplyJob(
        message=exchange.reply,
        user_id=learner.pk,
        usage_id=exchange.usage_id,
        request=exchange.request,
    )
    tasks.start_reply(job)
    return job


async def ended(job: tasks.ReplyJob) -> Message:
    assert job.task is not None
    await asyncio.wait_for(asyncio.shield(job.task), timeout=5)
    return await database_sync_to_async(Message.objects.get)(pk=job.message.pk)


async def test_stop_through_the_control_group_reaches_a_reply_in_another_process(
    model, learner, conversation
):
    model.script = Script(tokens=400, delay=0.01)
    async with Listener(conversation.pk) as page:
        job = await start(learner, conversation)
        await page.until("stream")

        # What another process's request_stop() sends: this process holds the reply.
        await events.publish(
            events.ctl_group(conversation.pk),
            {"type": "reply.stop", "message_id": str(job.message.pk)},
        )
        final = await page.until("final")

    reply = await ended(job)
    assert reply.status == "stopped"
    assert 'data-status="stopped"' in final["html"]
    assert await model.await_until(lambda rs: rs[-1].client_disconnected, timeout=3)


async def test_a_second_stop_while_the_reply_stores_its_end_does_not_lose_the_end(
    model, learner, conversation
):
    model.script = Script(tokens=400, delay=0.01)
    async with Listener(conversation.pk) as page:
        job = await start(learner, conversation)
        await page.until("stream")

        assert tasks.stop_local(job.message.pk)
        while not job.finishing:  # the first stop is being handled
            await asyncio.sleep(0.001)
        tasks.stop_local(job.message.pk)  # a second click, or a second tab
        final = await page.until("final")

    reply = await ended(job)
    assert reply.status == "stopped"
    assert 'data-status="stopped"' in final["html"]
    usage = await database_sync_to_async(AIUsage.objects.get)(pk=job.usage_id)
    assert usage.outcome == "stopped"


async def test_a_snapshot_request_sends_the_whole_text_so_far(model, learner, conversation):
    model.script = Script(tokens=200, delay=0.01)
    async with Listener(conversation.pk) as page:
        job = await start(learner, conversation)
        await page.until("stream")
        await page.until("stream")

        await tasks.request_snapshot(conversation.pk, page.channel)
        snapshot = await page.until("snapshot")
        tasks.stop_local(job.message.pk)
        await page.until("final")

    streamed = "".join(
        e["html"].split(">", 1)[1].rsplit("<", 1)[0]
        for e in page.events[: page.events.index(snapshot)]
        if e.get("stream")
    )
    assert streamed  # tokens went out before the snapshot
    assert 'data-status="streaming"' in snapshot["html"]
    assert streamed in snapshot["html"]
    assert snapshot["html"].startswith(f'<article id="message-{job.message.pk}"')
    await ended(job)


async def test_token_frames_are_numbered_and_a_snapshot_carries_the_last_number(
    model, learner, conversation
):
    model.script = Script(tokens=200, delay=0.005)
    async with Listener(conversation.pk) as page:
        job = await start(learner, conversation)
        for _ in range(3):
            await page.until("stream")
        await tasks.request_snapshot(conversation.pk, page.channel)
        await page.until("final")

    reply = await ended(job)
    numbered = [(e.get("part"), bool(e.get("snapshot"))) for e in page.events if "part" in e]
    snapshot_at = next(i for i, (_part, snap) in enumerate(numbered) if snap)
    tokens = [part for part, snap in numbered if not snap]
    # Consecutive from 1; the snapshot holds up to the frame before it, the next follows on.
    assert tokens == list(range(1, len(tokens) + 1))
    assert numbered[snapshot_at][0] == numbered[snapshot_at - 1][0]
    assert reply.metadata["frames"] == len(numbered)
    # The snapshot's text, then the token frames after it: the saved text, nothing twice.
    snapshot = next(e for e in page.events if e.get("snapshot"))
    body = re.search(r'-body"[^>]*>(.*?)</div>', snapshot["html"], re.S)
    assert body is not None
    shown = html.unescape(body[1]).strip() + "".join(
        html.unescape(e["html"].split(">", 1)[1].rsplit("<", 1)[0])
        for e in page.events[page.events.index(snapshot) :]
        if e.get("stream")
    )
    assert len(shown) > len(reply_tokens(1)[0])
    assert reply.content.startswith(shown)


async def test_a_crash_in_the_pipeline_ends_the_reply_failed_and_refunded(
    model, learner, conversation, monkeypatch
):
    class Broken:
        def stream(self, request):
            raise ZeroDivisionError("a bug")

    monkeypatch.setattr(tasks, "get_provider", lambda: Broken())
    async with Listener(conversation.pk) as page:
        job = await start(learner, conversation)
        final = await page.until("final")

    reply = await ended(job)
    assert (reply.status, reply.metadata["error"]) == ("failed", "unknown")
    assert 'data-status="failed"' in final["html"]
    errors = await database_sync_to_async(list)(
        Message.objects.filter(conversation=conversation, kind=Message.Kind.ERROR)
    )
    assert [m.content for m in errors] == ["Something went wrong while the coach was answering."]
    learner = await database_sync_to_async(type(learner).objects.get)(pk=learner.pk)
    assert await database_sync_to_async(quota.remaining)(learner) == 20


async def test_a_crash_between_the_reserve_and_the_model_request_refunds(
    model, learner, conversation, monkeypatch
):
    # The send's hop stored the answer, the empty reply and its quota unit; then the step
    # that hands the reply to its task fails: nothing may stay reserved or 'streaming'.
    exchange = await database_sync_to_async(replies.exchange_start)(
        user=learner, conversation=conversation, text="My answer.", ask_ai=True, require_ai=True
    )
    assert await database_sync_to_async(quota.remaining)(learner) == 19

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(tasks, "start_reply", broken)
    async with Listener(conversation.pk) as page:
        with pytest.raises(ZeroDivisionError):
            await tasks.start_exchange(exchange, user_id=learner.pk)
        shown = await page.until("seq")

    reply = await database_sync_to_async(Message.objects.get)(pk=exchange.reply.pk)
    assert (reply.status, reply.metadata["error"]) == ("failed", "unknown")
    assert shown["seq"] == exchange.user_message.seq  # the stored answer reaches the pages
    assert model.completions == []  # the model was never asked
    assert await database_sync_to_async(quota.remaining)(learner) == 20


async def test_a_page_closing_during_the_sends_hop_leaves_no_reply_streaming(
    model, learner, conversation, monkeypatch
):
    from chat.coach import actions as coach_actions
    from chat.coach import sending

    entered, release = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    send_message = sending.send_message

    def slow_send(*args, **kwargs):
        outcome = send_message(*args, **kwargs)  # committed
        loop.call_soon_threadsafe(entered.set)
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(timeout=5)
        return outcome

    monkeypatch.setattr(sending, "send_message", slow_send)

    class Page:
        user = learner

        def __init__(self) -> None:
            self.conversation = conversation

        async def send_frame(self, html: str) -> None: ...

        async def send_notice(self, text: str) -> None: ...

    handler = asyncio.create_task(coach_actions.on_send(Page(), {"message": "My answer."}))
    await asyncio.wait_for(entered.wait(), 5)
    handler.cancel()  # the page went away while its hop was running
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await handler

    async with asyncio.timeout(5):
        while True:
            replies_ = await database_sync_to_async(list)(
                Message.objects.filter(conversation=conversation, role="assistant", seq__gt=1)
            )
            if replies_ and replies_[0].status != "streaming":
                break
            await asyncio.sleep(0.05)
    assert [(m.status, m.metadata["error"]) for m in replies_] == [("failed", "unknown")]
    assert await database_sync_to_async(quota.remaining)(learner) == 20


async def test_a_finished_reply_records_model_tokens_and_timings(model, learner, conversation):
    job = await start(learner, conversation)

    reply = await ended(job)

    meta = reply.metadata
    assert reply.content == "".join(reply_tokens(20))
    assert meta["model"] == "gpt-4o-mini"
    assert meta["completion_tokens"] == 20 and meta["prompt_tokens"] > 0
    assert 0 < meta["ttft_ms"] <= meta["duration_ms"]
    assert meta["frames"] >= 1


async def test_server_side_time_to_first_token_at_20_ms_per_token(
    model, learner, conversation, capsys
):
    model.script = Script(tokens=10, delay=0.02)
    ttfts = []
    for i in range(5):
        job = await start(learner, conversation, f"Answer {i}.")
        reply = await ended(job)
        assert reply.status == "complete"
        ttfts.append(reply.metadata["ttft_ms"])

    median = statistics.median(ttfts)
    with capsys.disabled():
        print(f"\nserver-side TTFT at 20 ms/token: median {median} ms, all {ttfts}")
    # The first token is not held back by batching or saving: well under one token interval
    # of overhead on top of the HTTP round trip to the local fake.
    assert median < 100


async def test_time_to_first_token_counts_the_models_own_delay(model, learner, conversation):
    model.script = Script(tokens=3, first_token_delay=0.2)
    started = time.monotonic()

    reply = await ended(await start(learner, conversation))

    assert 200 <= reply.metadata["ttft_ms"] < (time.monotonic() - started) * 1000


async def test_the_model_request_goes_out_before_any_frame_is_rendered(
    model, learner, conversation, monkeypatch
):
    # Ask the model first: the answer, the empty reply and the quota badge are rendered while
    # the request is in flight. Before, the badge was rendered ahead of it (~1 ms of the
    # send → model request path).
    import httpx2

    order: list[str] = []
    real_send = httpx2.AsyncClient.send

    async def send(self: Any, request: Any, **kwargs: Any) -> Any:
        order.append("request")
        return await real_send(self, request, **kwargs)

    monkeypatch.setattr(httpx2.AsyncClient, "send", send)

    def recording(name: str) -> Any:
        real = getattr(frames, name)

        def rendered(*args: Any) -> Any:
            order.append(name)
            return real(*args)

        return rendered

    for name in ("message_appended", "quota"):
        monkeypatch.setattr(frames, name, recording(name))
    exchange = await database_sync_to_async(replies.exchange_start)(
        user=learner, conversation=conversation, text="My answer.", ask_ai=True, require_ai=True
    )

    await tasks.start_exchange(exchange, user_id=learner.pk)
    reply = await ended(tasks.JOBS[str(exchange.reply.pk)])

    assert reply.status == "complete"
    assert order[0] == "request", order
    assert order.count("message_appended") >= 2 and "quota" in order


async def test_a_crash_rendering_the_opening_frames_ends_the_reply_failed_and_refunded(
    model, learner, conversation, monkeypatch
):
    # The opening frames are rendered with the model request already on the wire: a bug
    # there ends the reply like any crash in the pipeline (failed, explained, refunded).
    model.script = Script(tokens=200, delay=0.01)
    exchange = await database_sync_to_async(replies.exchange_start)(
        user=learner, conversation=conversation, text="My answer.", ask_ai=True, require_ai=True
    )

    def broken(*args: Any) -> str:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(frames, "quota", broken)
    async with Listener(conversation.pk) as page:
        await tasks.start_exchange(exchange, user_id=learner.pk)
        final = await page.until("final")

    job = tasks.JOBS.get(str(exchange.reply.pk))
    if job is not None and job.task is not None:
        await asyncio.wait_for(asyncio.shield(job.task), timeout=5)
    reply = await database_sync_to_async(Message.objects.get)(pk=exchange.reply.pk)
    assert (reply.status, reply.metadata["error"]) == ("failed", "unknown")
    assert 'data-status="failed"' in final["html"]
    assert await database_sync_to_async(quota.remaining)(learner) == 20
