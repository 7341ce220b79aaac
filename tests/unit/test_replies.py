"""Practice writes: messages, exchanges, finishing and regenerating replies, exports."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import conversations
from chat.coach import quota, replies
from chat.live import delivery
from chat.models import AIUsage, Conversation, Membership, Message
from chat.practice import exports
from chat.practice import services as practice_services

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast(settings):
    settings.AI_DAILY_LIMIT = 5


@pytest.fixture
def learner(make_user):
    return make_user(nickname="Min-ji")


@pytest.fixture
def conversation(learner, persona):
    return practice_services.practice_start(user=learner, persona=persona)


def send(learner, conversation, text="I led a team of four.") -> replies.Exchange:
    exchange = replies.exchange_start(
        user=learner, conversation=conversation, text=text, ask_ai=True, require_ai=True
    )
    if exchange.note_later:
        # The reply task records the answer's feedback and title once the model is asked.
        exchange.feedback_id, exchange.retitled = replies.answer_noted(
            exchange.user_message, exchange.language
        )
    return exchange


def finish(exchange: replies.Exchange, status: str, content: str = "Partial", error: str = ""):
    return replies.reply_finish(
        message_id=exchange.reply.pk,
        content=content,
        status=status,
        metadata={"model": "fake"},
        usage_id=exchange.usage_id,
        error_text=error,
    )


def test_practice_starts_with_the_coachs_opening_line(learner, persona):
    conversation = practice_services.practice_start(user=learner, persona=persona)

    (opening,) = conversation.messages.all()
    assert conversation.kind == Conversation.Kind.PRACTICE
    assert conversation.owner == learner
    assert persona.name in conversation.title
    assert Membership.objects.get(conversation=conversation).user == learner
    assert (opening.seq, opening.role, opening.author) == (1, Message.Role.ASSISTANT, None)
    assert opening.content == persona.opening_line
    assert opening.metadata == {"opening": True}


def test_message_seq_increments_without_gaps(learner, conversation):
    for i in range(5):
        conversations.message_create(conversation=conversation, author=learner, content=f"m{i}")

    seqs = list(conversation.messages.values_list("seq", flat=True))
    conversation.refresh_from_db()
    assert seqs == [1, 2, 3, 4, 5, 6]
    assert conversation.last_seq == 6


def test_each_conversation_has_its_own_sequence(learner, persona, conversation):
    other = practice_services.practice_start(user=learner, persona=persona)

    message = conversations.message_create(conversation=other, author=learner, content="hi")

    assert message.seq == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_get_distinct_gapless_seqs(learner, persona):
    conversation = practice_services.practice_start(user=learner, persona=persona)
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def writer(n: int) -> None:
        try:
            start.wait(timeout=5)
            for i in range(5):
                conversations.message_create(
                    conversation=conversation, author=None, content=f"{n}.{i}"
                )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert not errors
    assert list(conversation.messages.values_list("seq", flat=True)) == list(range(1, 22))


def test_exchange_stores_the_message_and_opens_a_streaming_reply(learner, conversation):
    exchange = send(learner, conversation)

    assert exchange.user_message.seq == 2
    assert exchange.user_message.author == learner
    assert exchange.reply.seq == 3
    assert exchange.reply.status == Message.Status.STREAMING
    assert exchange.reply.content == ""
    assert (exchange.remaining, exchange.limit) == (4, 5)
    usage = AIUsage.objects.get(pk=exchange.usage_id)
    assert usage.message_id == exchange.reply.pk
    assert usage.outcome == AIUsage.Outcome.PENDING
    # The model sees the opening line and the learner's answer, not the empty reply.
    assert [(t.role, t.content) for t in exchange.request.history] == [
        ("assistant", conversation.persona.opening_line),
        ("user", "I led a team of four."),
    ]
    assert exchange.request.system_prompt == conversation.persona.system_prompt


def test_exchange_with_no_quota_left_stores_the_answer_and_its_analysis_without_a_reply(
    learner, conversation
):
    learner.daily_ai_limit = 0
    learner.save()
    before = (Message.objects.count(), AIUsage.objects.count())

    exchange = send(learner, conversation, "This answer still gets its analysis.")

    assert exchange.quota_refused and exchange.reply is None and exchange.usage_id is None
    assert (Message.objects.count(), AIUsage.objects.count()) == (before[0] + 1, before[1])
    assert exchange.user_message.feedback.status == "analysed"
    conversation.refresh_from_db()
    assert conversation.last_seq == 2
    assert not Message.objects.filter(content__contains="stay in my box").exists()


def test_a_failed_reply_is_refunded_and_explained(learner, conversation):
    exchange = send(learner, conversation)
    assert quota.remaining(learner) == 4

    reply, error = finish(exchange, Message.Status.FAILED, error="The AI service had a problem.")

    assert quota.remaining(learner) == 5
    assert (reply.status, reply.content) == (Message.Status.FAILED, "Partial")
    assert reply.metadata["model"] == "fake"
    assert reply.metadata["requested_at"]  # what was there before is kept
    assert error.kind == Message.Kind.ERROR
    assert error.role == Message.Role.SYSTEM
    assert error.content == "The AI service had a problem."
    assert error.seq == reply.seq + 1
    usage = AIUsage.objects.get(pk=exchange.usage_id)
    assert (usage.outcome, usage.refunded) == ("failed", True)


@pytest.mark.parametrize("status", [Message.Status.COMPLETE, Message.Status.STOPPED])
def test_a_complete_or_stopped_reply_is_not_refunded(learner, conversation, status):
    exchange = send(learner, conversation)

    reply, error = finish(exchange, status)

    assert error is None
    assert reply.status == status
    assert quota.remaining(learner) == 4
    assert AIUsage.objects.get(pk=exchange.usage_id).outcome == status


def test_finishing_a_reply_of_a_deleted_conversation_still_settles_the_quota(learner, conversation):
    exchange = send(learner, conversation)
    conversation.delete()

    assert finish(exchange, Message.Status.FAILED) == (None, None)
    assert quota.remaining(learner) == 5


def test_regenerate_replaces_the_last_reply_with_a_new_streaming_one(learner, conversation):
    first = send(learner, conversation)
    finish(first, Message.Status.FAILED, error="Oops.")
    error = Message.objects.get(kind=Message.Kind.ERROR)

    again = replies.reply_regenerate(user=learner, conversation=conversation)

    assert set(again.deleted_ids) == {str(first.reply.pk), str(error.pk)}
    assert not Message.objects.filter(pk__in=again.deleted_ids).exists()
    assert again.reply.status == Message.Status.STREAMING
    assert again.reply.seq == error.seq + 1
    assert again.remaining == 4  # the failed one was refunded; this one costs one
    assert [t.content for t in again.request.history][-1] == "I led a team of four."
    assert list(conversation.messages.values_list("role", flat=True)) == [
        "assistant",
        "user",
        "assistant",
    ]


def test_regenerate_refuses_the_opening_line_and_a_reply_still_streaming(learner, conversation):
    with pytest.raises(replies.NothingToRegenerateError):
        replies.reply_regenerate(user=learner, conversation=conversation)

    send(learner, conversation)

    with pytest.raises(replies.NothingToRegenerateError):
        replies.reply_regenerate(user=learner, conversation=conversation)


def test_regenerate_with_no_quota_left_keeps_the_old_reply(learner, conversation):
    exchange = send(learner, conversation)
    finish(exchange, Message.Status.COMPLETE, "A fine answer.")
    type(learner).objects.filter(pk=learner.pk).update(daily_ai_limit=1)

    with pytest.raises(replies.QuotaExhaustedError):
        replies.reply_regenerate(user=learner, conversation=conversation)

    assert Message.objects.get(pk=exchange.reply.pk).content == "A fine answer."


def test_checkpoint_saves_only_a_reply_still_streaming(learner, conversation):
    exchange = send(learner, conversation)
    replies.reply_checkpoint(exchange.reply.pk, "Half of it")
    assert Message.objects.get(pk=exchange.reply.pk).content == "Half of it"

    finish(exchange, Message.Status.COMPLETE, "All of it")
    replies.reply_checkpoint(exchange.reply.pk, "Half of it")  # a late checkpoint

    assert Message.objects.get(pk=exchange.reply.pk).content == "All of it"


def test_replies_left_streaming_by_a_dead_process_are_failed_and_refunded(learner, conversation):
    exchange = send(learner, conversation)
    replies.reply_checkpoint(exchange.reply.pk, "Half of")

    assert replies.recover_interrupted(older_than_seconds=0) == 1

    reply = Message.objects.get(pk=exchange.reply.pk)
    assert (reply.status, reply.content) == (Message.Status.FAILED, "Half of")
    assert Message.objects.filter(kind=Message.Kind.ERROR).count() == 1
    assert quota.remaining(learner) == 5


def test_the_send_stores_the_answer_and_leaves_its_feedback_to_the_reply_task(
    learner, conversation
):
    from chat.models import Feedback

    title = conversation.title
    exchange = replies.exchange_start(
        user=learner, conversation=conversation, text="I led a team.", ask_ai=True, require_ai=True
    )

    # Before the model request: the answer, the reply and its quota row; nothing else.
    assert exchange.note_later and exchange.request is not None
    assert not Feedback.objects.filter(message=exchange.user_message).exists()
    conversation.refresh_from_db()
    assert conversation.title == title
    feedback_id, retitled = replies.answer_noted(exchange.user_message, exchange.language)
    assert Feedback.objects.get(pk=feedback_id).message_id == exchange.user_message.pk
    assert retitled == "I led a team."
    # A retry (the reply's end, an abandoned reply) finds it and writes nothing new.
    assert replies.answer_noted(exchange.user_message, if_missing=True) == (feedback_id, "")
    assert Feedback.objects.filter(message=exchange.user_message).count() == 1


def test_a_process_dying_before_the_feedback_leaves_it_to_the_orphans_recovery(
    learner, conversation
):
    from chat.models import Feedback

    # The process died with the request on the wire: the answer has no feedback yet.
    exchange = replies.exchange_start(
        user=learner, conversation=conversation, text="I led a team.", ask_ai=True, require_ai=True
    )

    assert replies.recover_interrupted(older_than_seconds=0) == 1

    found = Feedback.objects.get(message=exchange.user_message)
    assert found.analysis["words"] == 4
    conversation.refresh_from_db()
    assert conversation.title == "I led a team."
    assert Message.objects.get(pk=exchange.reply.pk).status == Message.Status.FAILED
    assert quota.remaining(learner) == 5
    # A second sweep (or an answer that had its feedback) records nothing more.
    Message.objects.filter(pk=exchange.reply.pk).update(status=Message.Status.STREAMING)
    assert replies.recover_interrupted(older_than_seconds=0) == 1
    assert Feedback.objects.filter(message=exchange.user_message).count() == 1


def test_a_send_without_quota_stores_the_answer_with_its_feedback_at_once(
    learner, conversation, settings
):
    settings.AI_DAILY_LIMIT = 0

    exchange = replies.exchange_start(
        user=learner, conversation=conversation, text="I led a team.", ask_ai=True, require_ai=True
    )

    # No reply opens, so no request to hurry: the analysis is stored in the same hop.
    assert exchange.quota_refused and exchange.reply is None and not exchange.note_later
    assert exchange.user_message.feedback.pk == exchange.feedback_id
    assert exchange.retitled == "I led a team."


def test_a_reply_saved_recently_is_not_taken_for_orphaned(learner, conversation, settings):
    settings.REPLY_STALE_SECONDS = 60
    exchange = send(learner, conversation)
    Message.objects.filter(pk=exchange.reply.pk).update(
        updated_at=timezone.now() - timedelta(seconds=30)
    )
    assert replies.recover_interrupted() == 0

    replies.reply_checkpoint(exchange.reply.pk, "More")  # a save moves it on
    Message.objects.filter(pk=exchange.reply.pk).update(
        updated_at=timezone.now() - timedelta(seconds=61)
    )
    assert replies.recover_interrupted(conversation_id=uuid.uuid4()) == 0  # another one
    assert replies.recover_interrupted(conversation_id=conversation.pk) == 1
    assert Message.objects.get(pk=exchange.reply.pk).status == Message.Status.FAILED


def test_the_stale_threshold_outlasts_every_model_attempt(settings):
    settings.REPLY_STALE_SECONDS = 0
    settings.AI_TIMEOUT_SECONDS = 60
    settings.AI_MAX_RETRIES = 2
    assert replies.reply_stale_after() == 210

    settings.AI_TIMEOUT_SECONDS = 5
    assert replies.reply_stale_after() == 120  # never less

    settings.REPLY_STALE_SECONDS = 7
    assert replies.reply_stale_after() == 7


def test_the_socket_ends_an_orphaned_reply_and_the_page_shows_it(
    learner, conversation, settings, client
):
    settings.REPLY_STALE_SECONDS = 1
    exchange = send(learner, conversation)
    replies.reply_checkpoint(exchange.reply.pk, "Half of")
    Message.objects.filter(pk=exchange.reply.pk).update(
        updated_at=timezone.now() - timedelta(seconds=5)
    )

    missed, growing = delivery.catch_up(conversation, exchange.reply.seq)

    assert growing == []
    assert [m.kind for m in missed] == [Message.Kind.ERROR]
    assert Message.objects.get(pk=exchange.reply.pk).status == Message.Status.FAILED
    client.force_login(learner)
    page = client.get(f"/c/{conversation.pk}/").content.decode()
    assert 'data-status="failed"' in page and 'data-status="streaming"' not in page


def test_opening_a_page_writes_nothing_even_with_an_orphaned_reply(
    learner, conversation, settings, client
):
    settings.REPLY_STALE_SECONDS = 1
    exchange = send(learner, conversation)
    Message.objects.filter(pk=exchange.reply.pk).update(
        updated_at=timezone.now() - timedelta(seconds=5)
    )
    client.force_login(learner)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/c/{conversation.pk}/").status_code == 200
    writes = [
        q["sql"] for q in queries if q["sql"].split()[0].upper() in ("INSERT", "UPDATE", "DELETE")
    ]
    # A GET only reads; the socket's resync (or manage.py recover_replies) ends the orphan.
    assert writes == []
    assert Message.objects.get(pk=exchange.reply.pk).status == Message.Status.STREAMING


def test_recover_replies_command_reports_what_it_stored(learner, conversation):
    from io import StringIO

    from django.core.management import call_command

    send(learner, conversation)
    out = StringIO()
    call_command("recover_replies", "--older-than", "0", stdout=out)
    assert out.getvalue().strip() == "1 interrupted reply stored."


# --- exports ----------------------------------------------------------------------------------


def transcript(learner, conversation) -> list[Message]:
    exchange = send(learner, conversation, "I **shipped** it.")
    finish(exchange, Message.Status.STOPPED, "Good. Next question")
    return list(conversation.messages.select_related("author"))


def test_export_as_markdown_is_a_readable_transcript(learner, conversation):
    messages = transcript(learner, conversation)

    text = exports.as_markdown(conversation, messages)

    persona = conversation.persona
    assert text.startswith(f"# {conversation.title}\n\nCoach: {persona.name}\n")
    assert f"**{persona.name}** · " in text
    assert "**Min-ji** · " in text
    assert "I **shipped** it." in text
    assert "(stopped)\n\nGood. Next question" in text
    assert text.index(persona.opening_line) < text.index("I **shipped**") < text.index("Good.")


def test_export_as_json_has_every_message(learner, conversation):
    messages = transcript(learner, conversation)

    data = json.loads(exports.as_json(conversation, messages))

    assert data["id"] == str(conversation.pk)
    assert data["title"] == conversation.title
    assert data["kind"] == "practice"
    assert data["persona"] == conversation.persona.name
    assert [(m["seq"], m["role"], m["status"]) for m in data["messages"]] == [
        (1, "assistant", "complete"),
        (2, "user", "complete"),
        (3, "assistant", "stopped"),
    ]
    assert data["messages"][1]["author"] == "Min-ji"
    assert data["messages"][1]["content"] == "I **shipped** it."
    assert data["messages"][2]["metadata"]["model"] == "fake"


def test_each_reply_to_the_same_answer_asks_for_another_wording(learner, conversation):
    exchange = send(learner, conversation, "I led a team of four and we shipped early.")
    assert exchange.request.variant == 0
    finish(exchange, Message.Status.COMPLETE, "Thanks.")
    again = replies.reply_regenerate(user=learner, conversation=conversation)
    assert again.request.variant == 1
    assert again.request.category == conversation.persona.category


def test_a_dictated_answer_passes_its_duration_to_the_coach(learner, conversation):
    exchange = send(learner, conversation, "I led a team of four and we shipped early.")
    finish(exchange, Message.Status.COMPLETE, "Thanks.")
    answer = exchange.user_message
    answer.metadata = {**answer.metadata, "speech": {"duration_seconds": 6.5}}
    answer.save(update_fields=["metadata"])
    again = replies.reply_regenerate(user=learner, conversation=conversation)
    assert again.request.duration_seconds == 6.5


def test_a_dictated_answer_gets_words_per_minute_in_its_analysis(learner, conversation):
    exchange = replies.exchange_start(
        user=learner,
        conversation=conversation,
        text="I led a team of four people and we shipped the app early.",
        ask_ai=True,
        require_ai=True,
        metadata={"speech": {"duration_seconds": 6.0}},
    )
    assert exchange.note_later and exchange.feedback_id is None  # left to the reply task
    replies.answer_noted(exchange.user_message, exchange.language)
    analysis = exchange.user_message.feedback.analysis
    assert analysis["duration_seconds"] == 6.0
    assert analysis["words_per_minute"] == analysis["words"] * 10
    assert exchange.request.duration_seconds == 6.0
