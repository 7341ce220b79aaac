"""The history list: titles from the first answer, snippets, states, days in the reader's zone."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone

from chat.coach import replies
from chat.conversations import title_from_text
from chat.models import Conversation, Message
from chat.practice import selectors
from chat.practice import services as practice_services

pytestmark = pytest.mark.django_db


@pytest.fixture
def learner(make_user):
    return make_user(nickname="Min-ji")


def answer(learner, conversation, text):
    exchange = replies.exchange_start(
        user=learner, conversation=conversation, text=text, ask_ai=True, require_ai=True
    )
    # The reply task records the answer's feedback and title once the model is asked.
    exchange.feedback_id, exchange.retitled = replies.answer_noted(
        exchange.user_message, exchange.language
    )
    return exchange


def test_a_new_conversation_is_titled_by_its_coach_without_a_date(learner, persona):
    from django.utils import translation

    with translation.override("en"):
        conversation = practice_services.practice_start(user=learner, persona=persona)

    assert conversation.title == persona.name


def test_the_first_answer_names_the_conversation_shortened(learner, persona):
    conversation = practice_services.practice_start(user=learner, persona=persona)
    long_answer = (
        "I am a **product designer** with five years in fintech, mostly payments and onboarding."
    )

    answer(learner, conversation, long_answer)
    answer(learner, conversation, "A second answer changes nothing.")

    conversation.refresh_from_db()
    assert conversation.title == "I am a product designer with five years in fintech, mostly…"
    assert len(conversation.title) <= 60


def test_a_renamed_conversation_keeps_its_name(learner, persona):
    conversation = practice_services.practice_start(user=learner, persona=persona)
    practice_services.practice_rename(conversation=conversation, title="Mock for Toss")

    answer(learner, conversation, "My first answer.")

    conversation.refresh_from_db()
    assert conversation.title == "Mock for Toss"


def test_titles_are_plain_words():
    assert title_from_text("# Hello `world`\n\n> quoted") == "Hello world quoted"


def test_rows_carry_the_last_words_and_where_the_conversation_is(learner, persona):
    conversation = practice_services.practice_start(user=learner, persona=persona)
    exchange = answer(learner, conversation, "I shipped the payments feature.")

    (day,) = selectors.practice_history(learner)
    (row,) = day.conversations
    assert row.state == "answering"
    replies.reply_finish(
        message_id=exchange.reply.pk,
        content="Good. What was the result?",
        status=Message.Status.COMPLETE,
        metadata={},
        usage_id=exchange.usage_id,
    )
    (row,) = selectors.practice_history(learner)[0].conversations
    assert row.snippet == "Good. What was the result?"
    assert row.state == "your-turn"

    practice_services.practice_finish(conversation=conversation)
    (row,) = selectors.practice_history(learner)[0].conversations
    assert row.state == "finished"  # "Finished · report ready"


def test_a_coach_reply_snippet_shows_its_words_not_its_markdown(learner, persona):
    conversation = practice_services.practice_start(user=learner, persona=persona)
    exchange = answer(learner, conversation, "I **really** led it.")
    replies.reply_finish(
        message_id=exchange.reply.pk,
        content="Thanks. **Next time:** say [what changed](https://example.com) in `numbers`."
        "\n\n| part | score |\n| --- | --- |\n| Result | 2 |",
        status=Message.Status.COMPLETE,
        metadata={},
        usage_id=exchange.usage_id,
    )

    (row,) = selectors.practice_history(learner)[0].conversations

    assert row.snippet.startswith("Thanks. Next time: say what changed in numbers. part score")
    assert not any(mark in row.snippet for mark in ("**", "](", "`", "|"))


def test_a_learners_own_words_stay_as_typed_in_the_snippet(learner, persona):
    conversation = practice_services.practice_start(user=learner, persona=persona)
    replies.exchange_start(  # stored without asking the coach: it is the last message
        user=learner,
        conversation=conversation,
        text="I used *stars* on purpose.",
        ask_ai=False,
        require_ai=False,
    )

    (row,) = selectors.practice_history(learner)[0].conversations

    assert row.snippet == "I used *stars* on purpose."


def test_days_are_grouped_in_the_readers_zone(learner, persona):
    utc = dt.UTC
    # 02:00 UTC on 3 Dec is still 2 Dec in New York, already 3 Dec in Seoul.
    moments = [
        dt.datetime(2026, 12, 3, 2, 0, tzinfo=utc),
        dt.datetime(2026, 12, 2, 20, 0, tzinfo=utc),
    ]
    for moment in moments:
        conversation = practice_services.practice_start(user=learner, persona=persona)
        Conversation.objects.filter(pk=conversation.pk).update(last_activity_at=moment)

    with timezone.override(zoneinfo.ZoneInfo("America/New_York")):
        new_york = [day.date for day in selectors.practice_history(learner)]
    with timezone.override(zoneinfo.ZoneInfo("Asia/Seoul")):
        seoul = [day.date for day in selectors.practice_history(learner)]

    assert new_york == [dt.date(2026, 12, 2)]
    assert seoul == [dt.date(2026, 12, 3)]
