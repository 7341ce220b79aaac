"""Everything the model sees: the persona's prompt, the question bank and the history that fits."""

from __future__ import annotations

import re

from django.db import connections
from django.utils import translation
from django.utils.translation import gettext as _

from chat.coach.contract import ReplyRequest, Turn
from chat.models import Conversation, Message

HISTORY_MESSAGES = 40


def estimate_tokens(text: str) -> int:
    """Rough token count: about four characters per token."""
    return (len(text) + 3) // 4


def fit_history(history: list[Turn], budget_tokens: int) -> list[Turn]:
    """Keep the most recent turns that fit the budget; the last turn always stays."""
    if not history:
        return []
    budget = max(1, budget_tokens)
    last = history[-1]
    if estimate_tokens(last.content) > budget:
        # Keep the end of an oversized message: its latest words matter most.
        keep = budget * 4 - 1
        return [Turn(last.role, "…" + last.content[-keep:] if keep > 0 else "…")]
    kept = [last]
    used = estimate_tokens(last.content)
    for turn in reversed(history[:-1]):
        cost = estimate_tokens(turn.content)
        if used + cost > budget:
            break  # stop at the first misfit so the kept history has no holes
        kept.append(turn)
        used += cost
    kept.reverse()
    return kept


def split_words(text: str) -> list[str]:
    """Split text into word tokens keeping their leading whitespace ("".join gives it back)."""
    return re.findall(r"\s*\S+", text)


def build_messages(request: ReplyRequest, budget_tokens: int) -> list[dict[str, str]]:
    """The chat messages sent upstream: system prompt, then the history that fits."""
    history = [t for t in request.history if t.role in ("user", "assistant")]
    history = fit_history(history, budget_tokens)
    system = request.system_prompt.strip()
    if request.question_bank:
        questions = "\n".join(f"{i}. {q}" for i, q in enumerate(request.question_bank, 1))
        system += f"\n\nQuestions to work through, one at a time, in order:\n{questions}"
    if request.opening_line and not any(t.content == request.opening_line for t in history):
        system += f"\n\nYou opened the conversation with: {request.opening_line}"
    messages = [{"role": "system", "content": system.strip()}] if system.strip() else []
    messages += [{"role": t.role, "content": t.content} for t in history]
    return messages


# The interface languages by code, named in English for the model.
LANGUAGE_NAMES = {"en": "English", "ko": "Korean"}


def language_instruction(language: str) -> str:
    """Tell the model to answer in the learner's interface language ("" for English)."""
    name = LANGUAGE_NAMES.get(language.split("-")[0], "")
    if not name or name == "English":
        return ""
    return (
        f"The learner reads this app in {name}: write your replies in {name}, "
        "keeping English only for words or phrases the learner asks about."
    )


def recent_turns(conversation_id: object) -> list[tuple[str, str]]:
    """The last HISTORY_MESSAGES finished turns on screen, oldest first: (role, content).

    The path on screen, not the versions it replaced; no streaming or empty reply. Written
    out, one statement with only the two columns: building this queryset took longer than
    running it (~1.5 ms of the send → model request path).
    """
    connection = connections[Message.objects.db]
    quote = connection.ops.quote_name
    conversation = Message._meta.get_field("conversation")
    sql = (
        f"SELECT {quote('role')}, {quote('content')} FROM {quote(Message._meta.db_table)} "
        f"WHERE {quote(conversation.column)} = %s AND {quote('is_shown')} = %s "
        f"AND {quote('kind')} = %s AND {quote('role')} IN (%s, %s) "
        f"AND {quote('status')} <> %s AND {quote('content')} <> %s "
        f"ORDER BY {quote('seq')} DESC LIMIT {int(HISTORY_MESSAGES)}"
    )
    params = [
        conversation.get_db_prep_value(conversation_id, connection),
        True,
        Message.Kind.TEXT,
        Message.Role.USER,
        Message.Role.ASSISTANT,
        Message.Status.STREAMING,
        "",
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [(str(role), str(content)) for role, content in reversed(rows)]


def build_request(
    conversation: Conversation,
    language: str = "",
    *,
    variant: int = 0,
    duration_seconds: float | None = None,
) -> ReplyRequest:
    """What the model sees: the persona's prompt and the recent, finished history.

    `language` is the learner's interface language: the coach answers in it, unless the
    persona is an English-practice one (interview, conversation), which stays in English.
    `variant` (the answer's earlier replies) and `duration_seconds` (a dictated answer's
    speaking time) are for the offline coach's wording and pace advice.
    """
    persona = conversation.persona
    language = language or translation.get_language() or ""
    history = [Turn(role=role, content=content) for role, content in recent_turns(conversation.pk)]
    if persona is None:
        system = _(
            "You are Practalk's friendly coach in a live chat room of English learners. "
            "Answer briefly and helpfully."
        )
        return ReplyRequest(
            system_prompt=_join(system, language_instruction(language)),
            history=history,
            variant=variant,
        )
    system = persona.system_prompt
    if not persona.english_practice:
        system = _join(system, language_instruction(language))
    return ReplyRequest(
        system_prompt=system,
        history=history,
        question_bank=persona.question_bank,
        opening_line=persona.opening_line_for(language),
        model=persona.model,
        temperature=persona.temperature,
        category=persona.category,
        variant=variant,
        duration_seconds=duration_seconds,
    )


def _join(prompt: str, instruction: str) -> str:
    return f"{prompt.strip()}\n\n{instruction}" if instruction else prompt
