"""AI feedback on a class answer, from the learner's own quota: the real openai SDK against
the fake model server, over the class socket."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.cache import cache

from chat.classes import activity
from chat.models import AIUsage, ClassAnswer, ClassSession
from tests.conftest import use_fake_model
from tests.fakes.fake_openai import GOOD_RUBRIC, FakeOpenAIServer, Script
from tests.integration.classroom import *  # noqa: F403  (the class fixtures)
from tests.integration.test_class_consumer import Page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

QUESTIONS = "Tell me about a time you fixed a slow process.\nWhy this job?"
ANSWER = "At my last job releases took two days. I automated the tests and cut it to an hour."


@pytest.fixture(autouse=True)
def class_settings(settings: Any) -> Any:
    settings.ACTIVITY_REDIS_URL = ""
    settings.CLASS_DASHBOARD_BATCH_SECONDS = 0.05
    settings.AI_DAILY_LIMIT = 3
    activity.reset_client()
    cache.clear()
    return settings


@pytest.fixture
def model(settings: Any, fake_openai: FakeOpenAIServer) -> FakeOpenAIServer:
    return use_fake_model(settings, fake_openai, AI_DAILY_LIMIT=3)


@pytest.fixture
def class_questions() -> str:
    return QUESTIONS


@pytest.fixture
def class_running() -> bool:
    return True


def answer_id_in(html: str) -> int:
    match = re.search(r'name="answer_id" value="(\d+)"', html)
    assert match, html
    return int(match.group(1))


async def answered(page: Page, text: str = ANSWER) -> str:
    """Send an answer; the learner's card as it came back."""
    await page.send(action="answer", step=1, answer=text)
    return await page.until('data-testid="answer-saved"')


async def usages(user: Any) -> list[AIUsage]:
    return await database_sync_to_async(list)(AIUsage.objects.filter(user=user).order_by("pk"))


async def remaining(user: Any) -> int:
    from chat.coach import quota

    return await database_sync_to_async(quota.remaining)(user)


async def test_asked_feedback_charges_one_unit_and_the_card_shows_the_rubric(
    model: FakeOpenAIServer, coach: Any, minji: Any, session: ClassSession
) -> None:
    teacher = await Page(coach, session).open()
    page = await Page(minji, session).open()
    card = await answered(page)
    assert "Get AI feedback (uses 1 of your 3 left today)" in card
    assert model.requests == []  # the offline analysis costs nothing

    await page.send(action="ai_feedback", answer_id=answer_id_in(card))
    assert 'data-status="pending"' in await page.until('data-testid="ai-feedback"')
    done = await page.until('data-status="complete"')
    assert 'data-testid="rubric"' in done
    assert GOOD_RUBRIC["structure"]["reason"] in done and GOOD_RUBRIC["strength"] in done
    assert "ask-ai-feedback" not in done
    # Only the AI part is replaced: an answer being edited meanwhile keeps its text.
    assert done.startswith(f'<section id="answer-ai-{answer_id_in(card)}"')
    assert 'hx-swap-oob="true"' in done and 'id="answer-input"' not in done

    [usage] = await usages(minji)
    assert (usage.outcome, usage.refunded) == ("complete", False)
    assert await remaining(minji) == 2
    assert len(model.feedback_requests) == 1 and model.completions == []
    sent = model.feedback_requests[0].body
    assert ANSWER in sent["messages"][1]["content"]  # the learner's own answer was judged
    saved = await database_sync_to_async(ClassAnswer.objects.get)(user=minji)
    assert saved.ai_status == "complete" and saved.ai_usage_id == usage.pk
    assert saved.ai_feedback["rubric"]["relevance"] == GOOD_RUBRIC["relevance"]
    # The coach's dashboard row says it came, with the mean score.
    row = await teacher.until('data-testid="dashboard-ai" data-status="complete"')
    assert f'id="learner-{minji.pk}"' in row and "AI 4.0/5" in row

    # Asking again for the same answer charges nothing and asks the model nothing.
    await page.send(action="ai_feedback", answer_id=saved.pk)
    assert 'data-status="complete"' in await page.until('data-testid="ai-feedback"')
    await asyncio.sleep(0.2)
    assert len(await usages(minji)) == 1 and len(model.feedback_requests) == 1

    # Answering again with other words drops the old rubric: the button is back.
    again = await answered(page, ANSWER + " The team kept the new pipeline.")
    assert 'data-status="none"' in again and "uses 1 of your 2 left today" in again
    saved = await database_sync_to_async(ClassAnswer.objects.get)(user=minji)
    assert (saved.ai_status, saved.ai_feedback, saved.ai_usage_id) == ("", {}, None)
    await page.close()
    await teacher.close()


@pytest.mark.parametrize("failure", ["status_500", "timeout"])
async def test_a_model_failure_refunds_the_unit_and_says_so(
    model: FakeOpenAIServer, settings: Any, minji: Any, session: ClassSession, failure: str
) -> None:
    if failure == "status_500":
        model.script = Script(status=500, retry_after_ms=1)
    else:
        settings.AI_TIMEOUT_SECONDS = 0.5
        settings.AI_MAX_RETRIES = 0
        model.script = Script(stall=True, stall_seconds=5)
    page = await Page(minji, session).open()
    card = await answered(page)
    await page.send(action="ai_feedback", answer_id=answer_id_in(card))
    failed = await page.until('data-status="failed"', timeout=8)
    assert "AI feedback could not be had; your quota was not charged." in failed
    assert "uses 1 of your 3 left today" in failed  # it may be asked again
    assert len(model.feedback_requests) >= 1  # the model was asked (and failed)
    [usage] = await usages(minji)
    assert (usage.outcome, usage.refunded) == ("failed", True)
    assert await remaining(minji) == 3
    quota_frame = await page.until('id="quota-box"')  # the badge shows the unit back
    assert 'data-remaining="3"' in quota_frame
    await page.close()


async def test_with_no_quota_left_the_button_is_off_and_nothing_is_asked(
    model: FakeOpenAIServer, minji: Any, session: ClassSession
) -> None:
    minji.daily_ai_limit = 0
    await database_sync_to_async(minji.save)(update_fields=["daily_ai_limit"])
    page = await Page(minji, session).open()
    card = await answered(page)
    assert 'data-testid="ai-feedback-none-left"' in card and "No AI replies left today" in card
    assert re.search(r'<button[^>]*disabled[^>]*data-testid="ask-ai-feedback"', card)
    assert "data-reset" in card  # when they come back
    answer = await database_sync_to_async(ClassAnswer.objects.get)(user=minji)
    # A page that sends the action anyway is refused out loud.
    await page.send(action="ai_feedback", answer_id=answer.pk)
    assert "No AI replies left today" in await page.until('data-testid="notice"')
    await asyncio.sleep(0.2)
    assert model.requests == [] and await usages(minji) == []
    await page.close()


async def test_two_asks_at_once_charge_once(
    model: FakeOpenAIServer, minji: Any, session: ClassSession
) -> None:
    model.script = Script(first_token_delay=0.3)  # the first ask is still pending
    one = await Page(minji, session).open()
    two = await Page(minji, session).open()
    card = await answered(one)
    answer_id = answer_id_in(card)
    await asyncio.gather(
        one.send(action="ai_feedback", answer_id=answer_id),
        two.send(action="ai_feedback", answer_id=answer_id),
    )
    for page in (one, two):
        assert 'data-status="complete"' in await page.until('data-status="complete"')
    await asyncio.sleep(0.2)
    assert len(await usages(minji)) == 1 and len(model.feedback_requests) == 1
    assert await remaining(minji) == 2
    await one.close()
    await two.close()


async def test_a_learner_cannot_ask_for_feedback_on_someone_elses_answer(
    model: FakeOpenAIServer, minji: Any, joon: Any, session: ClassSession
) -> None:
    mine = await Page(minji, session).open()
    other = await Page(joon, session).open()
    card = await answered(mine)
    await other.send(action="ai_feedback", answer_id=answer_id_in(card), user=minji.pk)
    assert "your own answers only" in await other.until('data-testid="notice"')
    await other.send(action="ai_feedback", answer_id="not a number")
    assert "your own answers only" in await other.until('data-testid="notice"')
    await asyncio.sleep(0.2)
    assert model.requests == []
    assert await usages(minji) == [] and await usages(joon) == []
    assert await mine.quiet()  # nothing reached the answer's owner either
    await mine.close()
    await other.close()


async def test_the_offline_coach_offers_no_button(
    settings: Any, minji: Any, session: ClassSession
) -> None:
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = ""
    page = await Page(minji, session).open()
    card = await answered(page)
    assert 'data-testid="ai-feedback-off"' in card and "offline coach" in card
    assert "ask-ai-feedback" not in card
    answer = await database_sync_to_async(ClassAnswer.objects.get)(user=minji)
    await page.send(action="ai_feedback", answer_id=answer.pk)
    assert "offline coach" in await page.until('data-testid="notice"')
    assert await usages(minji) == []
    await page.close()


async def test_a_reconnecting_page_gets_the_rubric_back(
    model: FakeOpenAIServer, minji: Any, session: ClassSession
) -> None:
    page = await Page(minji, session).open()
    card = await answered(page)
    await page.send(action="ai_feedback", answer_id=answer_id_in(card))
    await page.until('data-status="complete"')
    await page.close()
    back = Page(minji, session)
    connected, _ = await back.comm.connect()
    assert connected
    await back.send(action="resync", last_seq=0)
    html = await back.until('id="learner-answer"')
    assert 'data-status="complete"' in html and GOOD_RUBRIC["improvement"] in html
    await back.close()
