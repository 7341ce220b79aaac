"""A conversation's title written by the model, once its first answer's reply is complete.

One short non-streamed request (no retries, a short timeout of its own) asks for a title
of a few words in the conversation's language. The output is cleaned to one plain line
(no quotes, no Markdown, at most the title field's length); anything unusable, and any
failure, keeps the title the first answer gave. The title is stored only while it is still
that automatic one, so a name the learner chose meanwhile stays. It is part of the first
answer's reply: it takes no quota of its own.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import openai

from chat.coach.contract import Turn
from chat.conversations import title_from_text
from chat.models import Conversation

log = logging.getLogger(__name__)

TITLE_WORDS = 6
PURPOSE_HEADER = {"X-Practalk-Purpose": "title"}
# Enough of each turn to say what the conversation is about; the rest costs tokens only.
TURN_CHARS = 1200
TITLE_MAX_LENGTH: int = Conversation._meta.get_field("title").max_length or 120

SYSTEM_PROMPT = (
    f"You name conversations. Give a short title of at most {TITLE_WORDS} words for the "
    "conversation below, about what the learner talked about. Write it in the language the "
    "conversation is held in. Reply with the title only: no quotes, no Markdown, no full "
    "stop, nothing before or after it."
)

_LABEL = re.compile(r"^\s*(?:title|conversation title|제목)\s*[:：]\s*", re.IGNORECASE)
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")  # [text](url) → text
_TAGS = re.compile(r"</?[A-Za-z][^<>]*>")  # HTML tags, not "a < b"
_QUOTES = "\"'`“”‘’„«»‹›「」『』"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WORDY = re.compile(r"\w")  # a title has at least one letter or digit


def build_messages(history: Sequence[Turn], reply: str) -> list[dict[str, str]]:
    """The title request: the instruction, then the conversation so far as one transcript."""
    turns = [*history, Turn(role="assistant", content=reply)]
    lines = []
    for turn in turns:
        text = " ".join(turn.content.split())[:TURN_CHARS]
        if text:
            speaker = "Learner" if turn.role == "user" else "Coach"
            lines.append(f"{speaker}: {text}")
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "\n".join(lines)},
    ]


def clean_title(content: str | None, limit: int = TITLE_MAX_LENGTH) -> str:
    """The model's output as a plain one-line title, or "" when nothing usable is left."""
    if not content:
        return ""
    lines = [line for line in (raw.strip() for raw in content.splitlines()) if line]
    # A fenced answer: the title is the first line inside the fence.
    lines = [line for line in lines if not line.startswith("```")]
    if not lines:
        return ""
    line = _LABEL.sub("", lines[0])
    line = _TAGS.sub("", _LINK.sub(r"\1", line))
    line = _CONTROL.sub(" ", line)
    line = line.lstrip("-•").strip()  # a list item
    previous = None
    while previous != line:  # quotes and Markdown marks around the title, in any nesting
        previous = line
        line = line.strip().strip(_QUOTES).strip("*_~#").strip()
        line = _LABEL.sub("", line)
    line = line.rstrip(".。")
    title = title_from_text(line, limit=limit).strip().strip(_QUOTES).strip()
    return title if _WORDY.search(title) else ""


async def request_title(
    client: openai.AsyncOpenAI, *, model: str, messages: list[dict[str, str]], timeout: float
) -> str:
    """Ask once for a title; the cleaned title, or "" (the failure is logged, never raised)."""
    try:
        completion = await client.with_options(
            timeout=timeout, max_retries=0
        ).chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            temperature=0,
            # Says what the request is for, to proxies, logs and the test server.
            extra_headers=PURPOSE_HEADER,
        )
    except openai.APIStatusError as exc:
        log.info("title: the model server answered %s", exc.status_code)
        return ""
    except openai.OpenAIError as exc:
        log.info("title: no answer (%s)", type(exc).__name__)
        return ""
    choice = completion.choices[0] if completion.choices else None
    content = choice.message.content if choice is not None else None
    title = clean_title(content)
    if not title:
        log.info("title: unusable output %r", (content or "")[:80])
    return title


def store_title(conversation_id: Any, *, automatic: str, title: str) -> bool:
    """Replace the automatic title (the first answer's) with the model's; False if renamed.

    One conditional UPDATE: a learner who renamed the conversation meanwhile keeps the name.
    """
    if not title or title == automatic:
        return False
    return bool(
        Conversation.objects.filter(pk=conversation_id, title=automatic).update(title=title)
    )
