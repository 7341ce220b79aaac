"""The offline coach: a deterministic interviewer that needs no network (the default)."""

from __future__ import annotations

import asyncio
import re
import zlib

from django.utils.translation import gettext

from chat.coach.contract import ProviderConfig, ReplyRequest, ReplyStream
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


def _generic_questions() -> list[str]:
    return [
        gettext("Can you tell me more about that — what exactly was your part in it?"),
        gettext("What was the hardest moment, and how did you handle it?"),
        gettext("What was the result, and how did you measure it?"),
        gettext("Looking back, what would you do differently next time?"),
        gettext("What did you learn from it that you use today?"),
    ]


# A result "with a number" may spell it out: "a team of four", "twice as fast", "half the cost".
_SPELLED_NUMBER = re.compile(
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
    r"forty|fifty|hundred|thousand|million|dozen|half|double|twice|triple|percent)\b",
    re.IGNORECASE,
)


def _has_number(text: str) -> bool:
    return any(ch.isdigit() for ch in text) or _SPELLED_NUMBER.search(text) is not None


def _acknowledge(answer: str) -> str:
    """A short, deterministic reaction to the learner's last answer."""
    text = answer.strip()
    words = len(text.split())
    if text.endswith("?"):
        return gettext("Good question. In a real interview, keep questions like that for the end.")
    if words < 15:
        return gettext(
            "Thanks. That answer was quite short — try adding a concrete example, "
            "for instance with the STAR structure (Situation, Task, Action, Result)."
        )
    if words > 250:
        return gettext(
            "Thanks, that was thorough. In a real interview, aim to keep an answer "
            "to about two minutes."
        )
    acknowledgements = [
        gettext("Thank you, that's a clear answer."),
        gettext("Good, that gives me a picture of how you work."),
        gettext("Thanks for walking me through that."),
        gettext("That's helpful context, thank you."),
    ]
    reply = acknowledgements[zlib.crc32(text.encode()) % len(acknowledgements)]
    if not _has_number(text):
        reply += " " + gettext("If you can, put a number on the result: it makes it memorable.")
    return reply


def offline_reply(request: ReplyRequest) -> str:
    """The offline interviewer's full reply text for a request."""
    history = request.history
    bank = [q for q in request.question_bank if q.strip()]
    assistant_turns = sum(1 for t in history if t.role == "assistant")
    # The opening line is the first assistant turn; questions start after it.
    index = max(0, assistant_turns - (1 if request.opening_line else 0))
    questions = bank or _generic_questions()
    question = questions[index % len(questions)]

    if not history:
        if request.opening_line:
            return request.opening_line
        return gettext("Hello! Let's practise. %(question)s") % {"question": question}

    parts = []
    if history[-1].role == "user":
        parts.append(_acknowledge(history[-1].content))
    if bank and index >= len(bank) and index % len(bank) == 0:
        parts.append(
            gettext(
                "We have been through all my questions — let's go round again "
                "so you can polish your answers."
            )
        )
    parts.append(question)
    return " ".join(parts)


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
