"""Feedback on learner answers in the database: the analysis on send, the rubric when it came.

Sync functions (wrap them with `chat.dbasync.db_async` in async code), like the reply
lifecycle in `chat.coach.replies`; frames leave through `chat.events` after commit.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, transaction
from django.utils import timezone, translation

from chat.coach.analysis import analyse
from chat.coach.rubric import RUBRIC_AXES
from chat.models import Conversation, Feedback, Message, Persona


def spoken_seconds(message: Message) -> float | None:
    """Seconds a dictated answer took to say (`metadata["speech"]["duration_seconds"]`)."""
    speech = message.metadata.get("speech") if isinstance(message.metadata, dict) else None
    seconds = speech.get("duration_seconds") if isinstance(speech, dict) else None
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
        return float(seconds)
    return None


def _question_and_answered(message: Message, *, count: bool) -> tuple[str | None, int]:
    """(the coach's last message before the answer, feedback of the answers on screen).

    The first is the question the answer answers; the second (only with `count`, else 0)
    numbers an interview's questions. One written-out statement: building the two
    querysets took longer than running them, on the path of every practice reply.
    """
    connection = connections[Message.objects.db]
    quote = connection.ops.quote_name
    messages, feedback = quote(Message._meta.db_table), quote(Feedback._meta.db_table)
    of_message = Message._meta.get_field("conversation")
    column = of_message.column
    on_message = quote(Feedback._meta.get_field("message").column)
    of_conversation = quote(Feedback._meta.get_field("conversation").column)
    conversation_id = of_message.get_db_prep_value(message.conversation_id, connection)
    answered = (
        f"(SELECT COUNT(*) FROM {feedback} f JOIN {messages} m ON m.{quote('id')} = f.{on_message} "
        f"WHERE f.{of_conversation} = %s AND m.{quote('is_shown')} = %s)"
        if count
        else "0"
    )
    sql = (
        f"SELECT (SELECT {quote('content')} FROM {messages} WHERE {quote(column)} = %s "
        f"AND {quote('role')} = %s AND {quote('kind')} = %s AND {quote('seq')} < %s "
        f"ORDER BY {quote('seq')} DESC LIMIT 1), {answered}"
    )
    params: list[Any] = [
        conversation_id,
        Message.Role.ASSISTANT,
        Message.Kind.TEXT,
        message.seq,
    ]
    if count:
        params += [conversation_id, True]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        asked, number = cursor.fetchone()
    return (str(asked) if asked else None), int(number or 0)


def _category(conversation: Conversation) -> str:
    persona: Persona | None = conversation.persona
    return persona.category if persona else "general"


def feedback_record(*, message: Message, conversation: Conversation) -> Feedback:
    """Analyse a learner's answer and store it (a few milliseconds; costs no quota)."""
    category = _category(conversation)
    persona = conversation.persona
    numbered = category == "interview" and persona is not None and bool(persona.question_bank)
    question, answered = _question_and_answered(message, count=numbered)
    analysis = analyse(
        message.content, question, category=category, duration_seconds=spoken_seconds(message)
    )
    number = total = None
    if numbered and persona is not None:
        total = len(persona.question_bank)
        number = min(total, answered + 1)
    return Feedback.objects.create(
        message=message,
        conversation=conversation,
        question=question or "",
        question_number=number,
        question_total=total,
        analysis=analysis.to_dict(),
        language=translation.get_language() or "",
    )


def pending_for(conversation: Conversation) -> Feedback | None:
    """The latest answer's feedback when it still waits for the model's part."""
    latest = (
        Feedback.objects.select_related("message")
        .filter(conversation=conversation, message__is_shown=True)
        .order_by("-message__seq")
        .first()
    )
    if latest is None or latest.status == Feedback.Status.COMPLETE:
        return None
    return latest


@transaction.atomic
def feedback_complete(
    *, feedback_id: int, rubric: dict[str, Any], model: str, metadata: dict[str, Any]
) -> Feedback | None:
    """Store the model's part of the feedback (rubric, strength, improvement, corrections)."""
    found = Feedback.objects.select_for_update().filter(pk=feedback_id).first()
    if found is None:  # the answer was deleted meanwhile
        return None
    found.rubric = {axis: rubric[axis] for axis in RUBRIC_AXES}
    found.strength = rubric.get("strength", "")
    found.improvement = rubric.get("improvement", "")
    found.rewrite = rubric.get("rewrite", "")
    found.corrections = list(rubric.get("corrections", []))
    found.status = Feedback.Status.COMPLETE
    found.model = model
    found.metadata = {**found.metadata, **metadata}
    found.updated_at = timezone.now()
    found.save()
    return found


@transaction.atomic
def feedback_failed(*, feedback_id: int, model: str, metadata: dict[str, Any]) -> Feedback | None:
    """The model's part could not be had: the card keeps the analysis and says so."""
    found = Feedback.objects.select_for_update().filter(pk=feedback_id).first()
    if found is None:
        return None
    found.status = Feedback.Status.FAILED
    found.model = model
    found.metadata = {**found.metadata, **metadata}
    found.updated_at = timezone.now()
    found.save(update_fields=["status", "model", "metadata", "updated_at"])
    return found


def rubric_inputs(feedback_id: int) -> dict[str, Any] | None:
    """What the rubric request needs: the question, the answer, its analysis, the language."""
    found = (
        Feedback.objects.select_related("message", "conversation__persona")
        .filter(pk=feedback_id)
        .first()
    )
    if found is None:
        return None
    return {
        "question": found.question,
        "answer": found.message.content,
        "category": _category(found.conversation),
        "analysis": found.analysis,
        "language": found.language,
    }


def card_frame_data(feedback_id: int) -> tuple[Feedback, str] | None:
    """A stored feedback and its answer's text, to render its card."""
    found = Feedback.objects.select_related("message").filter(pk=feedback_id).first()
    return (found, found.message.content) if found is not None else None
