"""The feedback card over the socket: at once with the answer, then filled in by the model."""

from __future__ import annotations

import html as htmllib
import re

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from chat.models import AIUsage, Feedback, Message
from tests.fakes.fake_openai import Script
from tests.integration import test_practice_consumer as practice
from tests.integration.test_practice_consumer import Page, attr, remaining, replies_done, reply_id

# The practice socket's fixtures, shared rather than copied.
practice_settings = practice.practice_settings
replies_end = practice.replies_end
model = practice.model
learner = practice.learner
conversation = practice.conversation

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

ANSWER = (
    "Um, at my last job our releases took two days. I had to make them faster. "
    "I automated the tests and I wrote a deploy script, so releases took two hours."
)


def card_of(frame: str, message_id: str) -> str:
    found = re.search(rf'<section id="feedback-{message_id}".*?</section>', frame, re.S)
    assert found, frame
    return found[0]


@database_sync_to_async
def answer_of(conversation) -> Message:
    return Message.objects.filter(conversation=conversation, role="user").latest("seq")


@database_sync_to_async
def feedback_of(message: Message) -> Feedback:
    return Feedback.objects.get(message=message)


async def test_the_answer_arrives_with_its_analysed_card_and_highlights(learner, conversation):
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say(ANSWER)
        frame = await page.until('data-role="user"')
        await replies_done()
    finally:
        await page.close()

    answer = await answer_of(conversation)
    card = card_of(frame, str(answer.pk))
    assert attr(card, "data-testid") == "feedback"
    assert attr(card, "data-for") == str(answer.pk)
    assert attr(card, "data-status") == "analysed"
    assert "Question 1 of" in card
    assert '<mark data-kind="filler">Um</mark>' in frame
    assert 'data-kind="result"' in frame  # STAR parts are marked (shown on demand)
    assert "<details" in card and "“Um”" in htmllib.unescape(card)  # the same as text
    stored = await feedback_of(answer)
    assert stored.status == "analysed"
    assert stored.analysis["fillers"][0]["form"] == "um"


async def test_a_typed_html_answer_is_escaped_inside_the_highlights(learner, conversation):
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say('Um, <img src=x onerror=alert(1)> I fixed it, like, "fast".')
        frame = await page.until('data-role="user"')
        await replies_done()
    finally:
        await page.close()
    assert "<img" not in frame
    assert "&lt;img src=x onerror=alert(1)&gt;" in frame


async def test_with_a_model_the_card_is_replaced_once_complete_and_costs_no_extra_reply(
    model, learner, conversation
):
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say(ANSWER)
        rid = await reply_id(page)
        card_frame = await page.until(lambda f: f.startswith('<section id="feedback-'))
        await replies_done()
    finally:
        await page.close()

    answer = await answer_of(conversation)
    assert attr(card_frame, "hx-swap-oob") == "true"
    assert attr(card_frame, "data-for") == str(answer.pk)
    assert attr(card_frame, "data-status") == "complete"
    assert 'data-testid="rubric"' in card_frame and "4/5" in card_frame
    assert "Put a number on the result." in card_frame
    stored = await feedback_of(answer)
    assert stored.status == "complete" and stored.rubric["relevance"]["score"] == 5
    assert stored.strength and stored.rewrite
    # One answer = one unit of quota: the reply and its feedback together.
    assert await remaining(learner) == 4
    assert await database_sync_to_async(AIUsage.objects.count)() == 1
    assert len(model.completions) == 1 and len(model.feedback_requests) == 1
    assert rid


async def test_a_model_that_never_gives_a_valid_rubric_leaves_the_analysis_with_a_notice(
    model, learner, conversation
):
    model.script = Script(tokens=5, rubric="broken")
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say(ANSWER)
        card_frame = await page.until(lambda f: f.startswith('<section id="feedback-'))
        await replies_done()
    finally:
        await page.close()

    assert attr(card_frame, "data-status") == "failed"
    assert 'data-testid="feedback-notice"' in card_frame
    assert "filler" in card_frame  # the analysis is still there
    assert len(model.feedback_requests) == 2  # retried once
    assert await remaining(learner) == 4


async def test_a_failed_reply_asks_no_feedback_and_is_refunded(model, learner, conversation):
    model.script = Script(status=500)
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say(ANSWER)
        await page.until('data-kind="error"')
        await replies_done()
    finally:
        await page.close()
    assert model.feedback_requests == []
    assert await remaining(learner) == 5
    stored = await feedback_of(await answer_of(conversation))
    assert stored.status == "analysed"


async def test_the_completed_card_is_shown_after_a_reload(model, learner, conversation):
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say(ANSWER)
        await page.until(lambda f: f.startswith('<section id="feedback-'))
        await replies_done()
    finally:
        await page.close()

    client = Client()
    await database_sync_to_async(client.force_login)(learner)
    response = await database_sync_to_async(client.get)(f"/c/{conversation.pk}/")
    body = response.content.decode()
    assert 'data-testid="feedback"' in body and 'data-status="complete"' in body
    assert '<mark data-kind="filler"' in body


async def test_a_page_that_was_away_gets_the_card_filled_in_meanwhile(model, learner, conversation):
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say(ANSWER)
        await page.until(lambda f: f.startswith('<section id="feedback-'))
        await replies_done()
    finally:
        await page.close()
    answer = await answer_of(conversation)

    again = Page(learner, conversation.pk)
    connected, _ = await again.comm.connect()
    assert connected
    try:
        # The page has every message (its last seq) but still shows the analysed card.
        await again.send(action="resync", last_seq=answer.seq + 1)
        await again.until('id="quota-box"')
    finally:
        await again.close()
    card = next(f for f in again.frames if f.startswith(f'<section id="feedback-{answer.pk}"'))
    assert attr(card, "data-status") == "complete"


async def test_answer_again_over_the_socket_removes_the_old_path_and_adds_a_version(
    learner, conversation
):
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say("Um, we usually work together.")
        first_reply = await reply_id(page)
        await page.until_final(first_reply)
        await replies_done()
        first = await answer_of(conversation)
        await page.send(action="send", message=ANSWER, parent=str(first.pk))
        second_reply = await reply_id(page)
        await replies_done()
    finally:
        await page.close()

    deleted = [f for f in page.frames if 'hx-swap-oob="delete"' in f]
    assert any(str(first.pk) in f for f in deleted) and any(first_reply in f for f in deleted)
    second = await answer_of(conversation)
    assert second.parent_id == first.pk and second_reply != first_reply
    appended = next(f for f in page.frames if f'id="message-{second.pk}"' in f)
    assert 'data-testid="versions"' in appended and "Version 2 of 2" in appended
    assert await remaining(learner) == 3  # each answer is one reply


async def test_answer_again_on_an_unknown_answer_is_refused_and_nothing_is_stored(
    learner, conversation
):
    page = await Page(learner, conversation.pk).open()
    try:
        await page.send(action="send", message=ANSWER, parent=str(conversation.pk))
        notice = await page.until('data-testid="notice"')
    finally:
        await page.close()
    assert "cannot be answered again" in htmllib.unescape(notice)
    assert await remaining(learner) == 5


async def test_a_feedback_write_that_fails_after_the_request_is_retried_at_the_reply_end(
    learner, conversation, monkeypatch
):
    from django.db import OperationalError

    from chat.coach import replies

    noted, calls = replies.answer_noted, []

    def flaky(*args, **kwargs):
        calls.append(kwargs.get("if_missing", False))
        if len(calls) == 1:
            raise OperationalError("database is locked")
        return noted(*args, **kwargs)

    monkeypatch.setattr(replies, "answer_noted", flaky)
    page = await Page(learner, conversation.pk).open()
    try:
        await page.say(ANSWER)
        frame = await page.until('data-role="user"')
        await replies_done()
    finally:
        await page.close()

    # The answer showed at once without its card; the reply's end stored the feedback.
    answer = await answer_of(conversation)
    assert f'id="feedback-{answer.pk}"' not in frame
    assert calls == [False, True]
    assert (await feedback_of(answer)).status == "analysed"
    reply = await database_sync_to_async(
        lambda: Message.objects.filter(conversation=conversation, role="assistant").latest("seq")
    )()
    assert reply.status == Message.Status.COMPLETE
