"""The offline coach: a deterministic interviewer that needs no network (the default)."""

from __future__ import annotations

import asyncio

from django.utils import translation
from django.utils.translation import gettext

from chat.coach.analysis import analyse
from chat.coach.coaching import COACH_LANGUAGE, offline_feedback, unanswered_questions
from chat.coach.contract import ProviderConfig, ReplyRequest, ReplyStream, Turn
from chat.coach.prompts import estimate_tokens, split_words


class _OfflineReplyStream(ReplyStream):
    def __init__(self, tokens: list[str], delay: float, prompt_tokens: int) -> None:
        super().__init__("offline")
        self._tokens = tokens
        self._delay = delay
        self._index = 0
        self._prompt_tokens = prompt_tokens

    async def __anext__(self) -> str:
        if self._closed or self._index >= len(self._tokens):
            if not self._closed:
                self.finish_reason = "stop"
                self.prompt_tokens = self._prompt_tokens
                self.completion_tokens = len(self._tokens)
            raise StopAsyncIteration
        # Always yield to the loop so the socket can flush between tokens.
        await asyncio.sleep(self._delay if self._index else 0)
        if self._closed:
            raise StopAsyncIteration
        token = self._tokens[self._index]
        self._index += 1
        return token


CATEGORIES = ("interview", "conversation", "medical", "general")


def _generic_questions() -> list[str]:
    return [
        gettext("Can you tell me more about that — what exactly was your part in it?"),
        gettext("What was the hardest moment, and how did you handle it?"),
        gettext("What was the result, and how did you measure it?"),
        gettext("Looking back, what would you do differently next time?"),
        gettext("What did you learn from it that you use today?"),
    ]


def _asked(history: list[Turn], question: str) -> bool:
    return any(t.role == "assistant" and question in t.content for t in history)


def _next_question(request: ReplyRequest) -> str:
    """The bank's next question (medical: the next one the learner has not answered yet).

    In English whatever the interface language: the questions are the practice.
    """
    with translation.override(COACH_LANGUAGE):
        return _question_for(request)


def _question_for(request: ReplyRequest) -> str:
    history = request.history
    bank = [q for q in request.question_bank if q.strip()]
    assistant_turns = sum(1 for t in history if t.role == "assistant")
    # The opening line is the first assistant turn; questions start after it.
    index = max(0, assistant_turns - (1 if request.opening_line else 0))
    if request.category == "medical" and bank:
        answers = [t.content for t in history if t.role == "user"]
        fresh = [q for q in unanswered_questions(bank, answers) if not _asked(history, q)]
        if fresh:
            return fresh[0]
    questions = bank or _generic_questions()
    question = questions[index % len(questions)]
    if bank and index >= len(bank) and index % len(bank) == 0:
        return (
            gettext(
                "We have been through all my questions — let's go round again "
                "so you can polish your answers."
            )
            + " "
            + question
        )
    return question


def offline_reply(request: ReplyRequest) -> str:
    """The offline coach's full reply: feedback on the latest answer, then the next question.

    Interview and general coaches acknowledge a phrase of the answer, give its most useful
    improvement and ask the bank's next question; conversation coaches give at most one
    correction and a follow-up about what was said instead; medical coaches ask what the
    history still lacks, else the next question not answered already. `request.variant`
    (how many replies this answer had) picks another wording on Regenerate.
    """
    history = request.history
    if not history:
        if request.opening_line:
            return request.opening_line
        with translation.override(COACH_LANGUAGE):
            return gettext("Hello! Let's practise. %(question)s") % {
                "question": _next_question(request)
            }
    if history[-1].role != "user":
        return _next_question(request)
    answer = history[-1].content
    asked = next((t.content for t in reversed(history[:-1]) if t.role == "assistant"), None)
    category = request.category if request.category in CATEGORIES else "general"
    analysis = analyse(answer, asked, category=category, duration_seconds=request.duration_seconds)
    feedback = offline_feedback(answer, asked, category, variant=request.variant, analysis=analysis)
    if category == "conversation":
        return feedback  # it ends on a follow-up about what the learner said
    if category == "medical" and analysis.history_missing:
        return feedback  # it ends on the part of the history still missing
    return f"{feedback} {_next_question(request)}"


class OfflineProvider:
    """A deterministic interviewer that needs no network: the default for development."""

    name = "offline"
    offline = True

    def __init__(self, config: ProviderConfig | None = None) -> None:
        self.config = config or ProviderConfig()

    def stream(self, request: ReplyRequest) -> ReplyStream:
        """Stream the offline reply word by word with the configured delay."""
        text = offline_reply(request)
        prompt = request.system_prompt + "".join(t.content for t in request.history)
        return _OfflineReplyStream(
            split_words(text), max(0.0, self.config.offline_token_delay), estimate_tokens(prompt)
        )

    async def check(self) -> None:
        """Always available."""

    async def aclose(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return "<OfflineProvider>"
