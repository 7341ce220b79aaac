"""Feedback on the pages: finish → report, the progress chart, exports and reloads."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client

from chat.coach import feedback as coach_feedback
from chat.coach import replies
from chat.models import Feedback, Message
from chat.practice import progress
from chat.practice import services as practice_services

pytestmark = pytest.mark.django_db

STRONG = (
    "Last year at my job our releases took two days. I had to make them faster. "
    "I automated the tests and I wrote a deploy script, so releases took two hours."
)
WEAK = "Um, we usually, like, work together and we always try our best, you know."


@pytest.fixture(autouse=True)
def quick(settings):
    settings.AI_DAILY_LIMIT = 5
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""


@pytest.fixture
def learner(make_user):
    return make_user(nickname="Min-ji")


@pytest.fixture
def conversation(learner, persona):
    return practice_services.practice_start(user=learner, persona=persona)


@pytest.fixture
def client(learner):
    c = Client()
    c.force_login(learner)
    return c


def answer(learner, conversation, text: str) -> Message:
    exchange = replies.exchange_start(
        user=learner, conversation=conversation, text=text, ask_ai=True, require_ai=True
    )
    assert exchange.reply is not None and exchange.user_message is not None
    # The reply task records the answer's feedback and title once the model is asked.
    exchange.feedback_id, exchange.retitled = replies.answer_noted(
        exchange.user_message, exchange.language
    )
    replies.reply_finish(
        message_id=exchange.reply.pk,
        content="Thanks. Next question?",
        status="complete",
        metadata={},
        usage_id=exchange.usage_id,
    )
    return exchange.user_message


def test_finish_practice_ends_the_session_and_opens_its_report(client, learner, conversation):
    answer(learner, conversation, STRONG)
    answer(learner, conversation, WEAK)
    response = client.post(f"/c/{conversation.pk}/finish/")
    assert response.status_code == 302 and response["Location"] == f"/c/{conversation.pk}/report/"
    conversation.refresh_from_db()
    assert conversation.finished_at is not None

    page = client.get(response["Location"]).content.decode()
    assert 'data-testid="report"' in page
    assert page.count('data-testid="report-item"') == 2
    assert page.count('data-testid="feedback"') == 2
    assert 'media="print"' in page and "css/print.css" in page
    priorities = page.split('data-testid="report-priorities"')[1].split("</ol>")[0]
    assert priorities.count("<li>") == 3
    assert "not only “we”" in priorities  # the weak answer says "we" throughout


def test_someone_elses_report_is_not_found(make_user, conversation):
    other = Client()
    other.force_login(make_user(nickname="Other"))
    assert other.get(f"/c/{conversation.pk}/report/").status_code == 404
    assert other.post(f"/c/{conversation.pk}/finish/").status_code == 404


def test_the_conversation_list_links_each_report(client, conversation):
    page = client.get("/").content.decode()
    assert f'href="/c/{conversation.pk}/report/"' in page


def test_the_conversation_page_shows_cards_highlights_and_finish(client, learner, conversation):
    message = answer(learner, conversation, WEAK)
    page = client.get(f"/c/{conversation.pk}/").content.decode()
    assert f'data-for="{message.pk}"' in page
    assert '<mark data-kind="filler"' in page and '<mark data-kind="we"' in page
    assert 'data-testid="finish-practice"' in page
    assert "Question 1 of" in page


def test_progress_draws_a_chart_a_table_the_best_answers_and_the_streak(
    client, learner, conversation
):
    answer(learner, conversation, WEAK)
    best = answer(learner, conversation, STRONG)
    page = client.get("/progress/").content.decode()
    assert '<svg class="progress-chart" data-testid="progress-chart"' in page
    assert "<polyline" in page and 'data-testid="progress-table"' in page
    assert "1 day in a row" in page
    assert best.content[:40] in page


def test_progress_with_nothing_answered_says_how_to_start(client):
    page = client.get("/progress/").content.decode()
    assert "progress-chart" not in page and "progress shows here" in page


def test_streak_counts_consecutive_days_up_to_today_or_yesterday():
    today = dt.date(2026, 12, 2)
    days = {today - dt.timedelta(days=n) for n in (0, 1, 2, 4)}
    assert progress.streak(days, today) == 3
    assert progress.streak({today - dt.timedelta(days=1)}, today) == 1
    assert progress.streak({today - dt.timedelta(days=2)}, today) == 0


def test_exports_carry_the_feedback(client, learner, conversation):
    message = answer(learner, conversation, WEAK)
    stored = Feedback.objects.get(message=message)
    coach_feedback.feedback_complete(
        feedback_id=stored.pk,
        rubric={
            **{
                a: {"score": 2, "reason": "Vague."}
                for a in ("structure", "relevance", "specificity", "clarity", "language")
            },
            "strength": "Friendly tone.",
            "improvement": "Tell one real occasion.",
            "rewrite": "Last March I fixed our deploy script.",
            "corrections": [],
        },
        model="fake-model",
        metadata={},
    )
    md = client.get(f"/c/{conversation.pk}/export.md").content.decode()
    assert "> Structure: 2/5 — Vague." in md and "> Try saying: Last March" in md
    data = json.loads(client.get(f"/c/{conversation.pk}/export.json").content)
    exported = next(m for m in data["messages"] if m["id"] == str(message.pk))
    assert exported["feedback"]["status"] == "complete"
    assert exported["feedback"]["rubric"]["clarity"]["score"] == 2
    assert exported["feedback"]["analysis"]["fillers"]


def test_a_dictated_answer_shows_words_per_minute(learner, conversation):
    message = Message.objects.create(
        conversation=conversation,
        seq=99,
        author=learner,
        content=STRONG,
        metadata={"speech": {"duration_seconds": 12.0}},
    )
    stored = coach_feedback.feedback_record(message=message, conversation=conversation)
    assert stored.analysis["words_per_minute"] == round(stored.analysis["words"] * 5, 1)


def again(learner, conversation, parent: Message, text: str) -> replies.Exchange:
    exchange = replies.exchange_start(
        user=learner,
        conversation=conversation,
        text=text,
        ask_ai=True,
        require_ai=True,
        parent_id=parent.pk,
    )
    # The reply task records the answer's feedback and title once the model is asked.
    exchange.feedback_id, exchange.retitled = replies.answer_noted(
        exchange.user_message, exchange.language
    )
    replies.reply_finish(
        message_id=exchange.reply.pk,
        content="Better. Next?",
        status="complete",
        metadata={},
        usage_id=exchange.usage_id,
    )
    return exchange


def shown(conversation) -> list[str]:
    return list(
        Message.objects.filter(conversation=conversation, is_shown=True)
        .order_by("seq")
        .values_list("content", flat=True)
    )


def test_answer_again_keeps_both_versions_and_shows_one_path(client, learner, conversation):
    first = answer(learner, conversation, WEAK)
    exchange = again(learner, conversation, first, STRONG)
    second = exchange.user_message
    assert exchange.deleted_ids[0] == str(first.pk) and len(exchange.deleted_ids) == 2
    assert second.parent_id == first.pk
    assert WEAK not in shown(conversation) and STRONG in shown(conversation)
    assert Feedback.objects.filter(message__in=[first, second]).count() == 2
    # The model sees the path on screen only.
    from chat.coach.prompts import build_request

    history = [t.content for t in build_request(conversation).history]
    assert WEAK not in history and STRONG in history

    page = client.get(f"/c/{conversation.pk}/").content.decode()
    assert 'data-testid="versions"' in page and "Version 2 of 2" in page
    assert WEAK not in page

    compare = client.get(f"/c/{conversation.pk}/m/{second.pk}/compare/").content.decode()
    assert compare.count('data-testid="compare-version"') == 2
    assert "Um, we usually" in compare and "releases took two hours" in compare

    response = client.post(f"/c/{conversation.pk}/m/{first.pk}/show/", HTTP_HX_REQUEST="true")
    assert response.status_code == 204 and response["HX-Refresh"] == "true"
    assert WEAK in shown(conversation) and STRONG not in shown(conversation)
    assert "Thanks. Next question?" in shown(conversation)


def test_answer_again_on_someone_elses_or_a_hidden_answer_is_refused(learner, conversation):
    first = answer(learner, conversation, WEAK)
    again(learner, conversation, first, STRONG)
    with pytest.raises(replies.NoSuchAnswerError):
        again(learner, conversation, first, "Third try.")  # hidden now


def test_editing_the_last_answer_and_resending_makes_a_version(learner, conversation):
    first = answer(learner, conversation, STRONG)
    edited = again(learner, conversation, first, STRONG.replace("two hours", "ninety minutes"))
    assert edited.user_message.parent_id == first.pk
    assert shown(conversation)[-2].endswith("ninety minutes.")


def test_feedback_and_the_offline_coach_speak_korean_when_the_interface_does(learner, conversation):
    from django.utils import translation

    from chat import frames
    from chat.coach.contract import ReplyRequest, Turn
    from chat.coach.offline import offline_reply

    message = answer(learner, conversation, WEAK)
    with translation.override("ko"):
        card = frames.render_message(Message.objects.get(pk=message.pk))
        reply = offline_reply(
            ReplyRequest(system_prompt="", history=[Turn("user", WEAK)], category="interview")
        )
        small_talk = offline_reply(
            ReplyRequest(
                system_prompt="",
                history=[Turn("user", "Yesterday I go to the park with my dog.")],
                category="conversation",
            )
        )
    assert "이 답변에 대한 피드백" in card and "질문 " in card
    assert "다음에는:" in reply  # the advice in the interface language...
    assert reply.endswith("Can you tell me more about that — what exactly was your part in it?")
    assert "팁:" in small_talk  # ...the questions in English
    assert small_talk.endswith("What is the park like? Describe it for me.")


def test_switching_versions_keeps_what_was_said_on_each_path(client, learner, conversation):
    first = answer(learner, conversation, WEAK)
    second = again(learner, conversation, first, STRONG).user_message
    practice_services.version_show(conversation=conversation, message_id=first.pk)
    later = answer(learner, conversation, "Then I told my manager about it.")
    assert later.content in shown(conversation) and STRONG not in shown(conversation)

    practice_services.version_show(conversation=conversation, message_id=second.pk)
    assert STRONG in shown(conversation)
    assert WEAK not in shown(conversation) and later.content not in shown(conversation)

    practice_services.version_show(conversation=conversation, message_id=first.pk)
    assert [WEAK, later.content] == [c for c in shown(conversation) if c in (WEAK, later.content)]
    assert STRONG not in shown(conversation)


def test_an_interviews_answers_are_numbered_by_the_answers_on_screen_and_know_their_question(
    learner, conversation
):
    total = len(conversation.persona.question_bank)
    first = answer(learner, conversation, WEAK)
    opening = Message.objects.filter(conversation=conversation, seq__lt=first.seq)
    asked = opening.filter(role=Message.Role.ASSISTANT).order_by("-seq").first()
    assert first.feedback.question_number == 1 and first.feedback.question_total == total
    assert first.feedback.question == asked.content  # the coach's opening question
    second = answer(learner, conversation, STRONG)
    assert second.feedback.question_number == 2
    assert second.feedback.question == "Thanks. Next question?"  # the reply before it
    # Answering the second again hides it: the new version is still question 2, not 3.
    again_second = again(learner, conversation, second, STRONG + " It saved us a day a week.")
    assert Feedback.objects.get(message=again_second.user_message).question_number == 2
