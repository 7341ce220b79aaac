"""The model-written title over the socket: the real openai SDK against the fake server.

The first answer names the conversation at once; with a model, one title request follows
the completed reply and its title replaces that name on every open page — unless the
learner renamed it meanwhile, or the request fails, which leaves the first answer's title.
"""

from __future__ import annotations

import html as htmllib
import re

import pytest
from channels.db import database_sync_to_async

from chat.conversations import title_from_text
from chat.models import AIUsage, Conversation, Message
from chat.practice import services as practice_services
from tests.fakes.fake_openai import DEFAULT_TITLE, Script
from tests.integration import test_practice_consumer as practice
from tests.integration.test_practice_consumer import (
    Page,
    is_final,
    remaining,
    replies_done,
    reply_id,
)

# The practice socket's fixtures, shared rather than copied.
practice_settings = practice.practice_settings
replies_end = practice.replies_end
model = practice.model
learner = practice.learner
conversation = practice.conversation

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

ANSWER = (
    "At my last job our releases took two days, so I automated the tests and wrote a "
    "deploy script; releases then took two hours."
)
FIRST_TITLE = title_from_text(ANSWER)
TITLE_FRAME = re.compile(r'^<h1 id="conv-title" class="conv-title" hx-swap-oob="true">(.*?)</h1>$')


def titles_shown(page: Page) -> list[str]:
    """Each title frame the page got, as its text, in order."""
    found = [TITLE_FRAME.match(frame.strip()) for frame in page.frames]
    return [htmllib.unescape(m[1]) for m in found if m]


async def drain(page: Page, quiet: float = 0.3) -> None:
    """Read every frame still on its way to the page."""
    # receive_nothing, not a timed receive: a receive that times out cancels the consumer.
    while not await page.quiet(quiet):
        await page.next()


@database_sync_to_async
def stored_title(conversation: Conversation) -> str:
    conversation.refresh_from_db()
    return conversation.title


async def answer_and_finish(page: Page, text: str = ANSWER) -> str:
    """Send an answer, wait for its reply's final frame and every follow-up; the reply id."""
    await page.say(text)
    rid = await reply_id(page)
    await page.until_final(rid)
    await replies_done()
    await drain(page)
    return rid


async def test_the_models_title_replaces_the_first_answers_on_the_page(
    model, learner, conversation
):
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say(ANSWER)
        rid = await reply_id(page)
        await page.until(lambda f: TITLE_FRAME.match(f.strip()) and DEFAULT_TITLE in f)
        await replies_done()
        await drain(page)
    finally:
        await page.close()

    # First the answer's own title (at once), then the model's.
    assert titles_shown(page) == [FIRST_TITLE, DEFAULT_TITLE]
    final_at = next(i for i, f in enumerate(page.frames) if is_final(f, rid))
    model_at = max(i for i, f in enumerate(page.frames) if DEFAULT_TITLE in f)
    assert final_at < model_at  # asked after the reply ended: it never holds the stream
    assert await stored_title(conversation) == DEFAULT_TITLE

    (request,) = model.title_requests
    assert request.headers["x-practalk-purpose"] == "title"
    assert not request.body.get("stream")
    system, user = request.body["messages"]
    assert "at most 6 words" in system["content"]
    assert "Learner: " + ANSWER in user["content"]
    assert user["content"].startswith("Coach: ")  # the coach's question comes first
    reply = await database_sync_to_async(Message.objects.get)(pk=rid)
    assert user["content"].endswith("Coach: " + " ".join(reply.content.split()))
    # The reply's unit covers it: one reply, one unit, the title costs nothing more.
    assert len(model.completions) == 1
    assert await remaining(learner) == 4
    assert await database_sync_to_async(AIUsage.objects.count)() == 1


async def test_a_quoted_markdown_title_is_stored_clean_and_shown_escaped(
    model, learner, conversation
):
    model.script = Script(
        tokens=5, title='**"Automating <img src=x onerror=alert(1)>tests & releases."**\nHope!'
    )
    page = await Page(learner, conversation.pk).open()
    try:
        await answer_and_finish(page)
    finally:
        await page.close()
    assert titles_shown(page)[-1] == "Automating tests & releases"
    assert any("Automating tests &amp; releases</h1>" in f for f in page.frames)
    assert not any("<img" in f for f in page.frames)
    assert await stored_title(conversation) == "Automating tests & releases"


async def test_a_conversation_renamed_meanwhile_keeps_its_name(model, learner, conversation):
    model.script = Script(tokens=5, title_delay=0.8)
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say(ANSWER)
        rid = await reply_id(page)
        await page.until_final(rid)
        assert await model.await_until(lambda rs: any(r.title for r in rs), timeout=3)
        # The title request is on its way: the learner renames the conversation now.
        await database_sync_to_async(practice_services.practice_rename)(
            conversation=conversation, title="Mock for Toss"
        )
        await replies_done()
        await drain(page)
    finally:
        await page.close()

    assert len(model.title_requests) == 1 and model.title_requests[0].completed
    assert await stored_title(conversation) == "Mock for Toss"
    assert DEFAULT_TITLE not in titles_shown(page)


@pytest.mark.parametrize(
    "script",
    [
        Script(tokens=5, title_status=500),
        Script(tokens=5, title_status=429),
        Script(tokens=5, title_delay=3),  # longer than AI_TITLE_TIMEOUT_SECONDS
        Script(tokens=5, title=""),
        Script(tokens=5, title='"**"'),
        Script(tokens=5, title="```\n```"),
    ],
    ids=["500", "429", "timeout", "empty", "only-marks", "empty-fence"],
)
async def test_a_failed_title_request_keeps_the_first_answers_title(
    model, learner, conversation, settings, script, caplog
):
    settings.AI_TITLE_TIMEOUT_SECONDS = 0.4
    model.script = script
    page = await Page(learner, conversation.pk).open()
    try:
        rid = await answer_and_finish(page)
    finally:
        await page.close()

    assert titles_shown(page) == [FIRST_TITLE]
    assert await stored_title(conversation) == FIRST_TITLE
    assert len(model.title_requests) == 1  # asked once: never retried
    reply = await database_sync_to_async(Message.objects.get)(pk=rid)
    assert reply.status == Message.Status.COMPLETE
    assert await remaining(learner) == 4
    assert any(r.name == "chat.coach.titles" for r in caplog.records)


async def test_only_the_first_answer_asks_for_a_title(model, learner, conversation):
    page = await Page(learner, conversation.pk).open()
    try:
        await answer_and_finish(page)
        await answer_and_finish(page, "Then I taught the team to use the script.")
    finally:
        await page.close()
    assert len(model.title_requests) == 1
    assert len(model.completions) == 2
    assert await stored_title(conversation) == DEFAULT_TITLE


async def test_a_failed_reply_asks_for_no_title(model, learner, conversation):
    model.script = Script(status=500)
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say(ANSWER)
        await page.until('data-kind="error"')
        await replies_done()
    finally:
        await page.close()
    assert model.title_requests == []
    assert await stored_title(conversation) == FIRST_TITLE


async def test_the_offline_coach_sends_no_title_request(fake_openai, learner, conversation):
    fake_openai.clear()  # running, but not configured: the offline coach answers
    page = await Page(learner, conversation.pk).open()
    try:
        await answer_and_finish(page)
    finally:
        await page.close()
    assert fake_openai.requests == []
    assert titles_shown(page) == [FIRST_TITLE]
    assert await stored_title(conversation) == FIRST_TITLE


async def test_a_room_is_never_retitled(model, room, guest):
    page = await Page(guest, room.pk).open(last_seq=0)
    try:
        await page.say("@coach how do I greet an interviewer?")
        rid = await reply_id(page)
        await page.until_final(rid)
        await replies_done()
        await drain(page)
    finally:
        await page.close()
    assert model.title_requests == []
    assert titles_shown(page) == []
    assert await stored_title(room) == "Small talk"
