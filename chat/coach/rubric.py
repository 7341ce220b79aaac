"""The model's part of an answer's feedback: a rubric, a strength, an improvement, corrections.

One non-streamed request with structured output (`response_format` JSON schema); a server
that refuses the parameter is asked again for JSON in plain text. The answer is validated
with pydantic (strict types, scores 1-5); an invalid answer or a refusal is asked once
more, then the card keeps the analysis alone and says so. The request is part of the
answer's reply: it takes no quota of its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

import openai
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

RUBRIC_AXES = ("structure", "relevance", "specificity", "clarity", "language")
ATTEMPTS = 2  # the first answer and one retry

Text = Annotated[StrictStr, Field(min_length=1, max_length=600)]


class Axis(BaseModel):
    """One rubric axis: a score from 1 to 5 and a one-line reason."""

    model_config = ConfigDict(extra="ignore")
    score: Annotated[StrictInt, Field(ge=1, le=5)]
    reason: Text


class Correction(BaseModel):
    """One language correction (small talk): the original, the corrected, why."""

    model_config = ConfigDict(extra="ignore")
    original: Text
    corrected: Text
    explanation: Annotated[StrictStr, Field(max_length=600)] = ""


class Rubric(BaseModel):
    """What the model must return for one answer."""

    model_config = ConfigDict(extra="ignore")
    structure: Axis
    relevance: Axis
    specificity: Axis
    clarity: Axis
    language: Axis
    strength: Text
    improvement: Text
    rewrite: Text
    corrections: Annotated[list[Correction], Field(max_length=10)] = Field(default_factory=list)


def _axis_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "reason": {"type": "string"},
        },
        "required": ["score", "reason"],
        "additionalProperties": False,
    }


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **{axis: _axis_schema() for axis in RUBRIC_AXES},
        "strength": {"type": "string"},
        "improvement": {"type": "string"},
        "rewrite": {"type": "string"},
        "corrections": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "original": {"type": "string"},
                    "corrected": {"type": "string"},
                    "explanation": {"type": "string"},
                },
                "required": ["original", "corrected", "explanation"],
                "additionalProperties": False,
            },
        },
    },
    "required": [*RUBRIC_AXES, "strength", "improvement", "rewrite", "corrections"],
    "additionalProperties": False,
}
RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {"name": "answer_feedback", "schema": SCHEMA, "strict": True},
}


class RubricError(Exception):
    """The model's output was no valid rubric (broken JSON, wrong fields, a refusal)."""


@dataclass
class RubricOutcome:
    """A validated rubric (as a JSON-ready dict) or None, and how it went."""

    rubric: dict[str, Any] | None
    model: str
    attempts: int
    structured: bool  # the server accepted response_format
    problems: list[str] = field(default_factory=list)


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def parse_rubric(content: str | None, refusal: str | None = None) -> dict[str, Any]:
    """Validate a model's output (JSON, maybe in a code fence or after a sentence)."""
    if refusal:
        raise RubricError(f"refused: {refusal[:200]}")
    if not content or not content.strip():
        raise RubricError("empty output")
    text = _FENCE.sub("", content.strip())
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise RubricError("no JSON object in the output")
    try:
        data = json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise RubricError(f"broken JSON: {exc}") from exc
    try:
        return Rubric.model_validate(data).model_dump()
    except ValidationError as exc:
        raise RubricError(f"invalid rubric: {exc.error_count()} errors") from exc


LANGUAGE_NAMES = {"ko": "Korean", "en": "English"}


def build_messages(
    *, question: str, answer: str, category: str, analysis: dict[str, Any], language: str
) -> list[dict[str, str]]:
    """The rubric request: what to judge, the analyser's findings, the reply's language."""
    lang = LANGUAGE_NAMES.get(language.split("-")[0], "English")
    kind = {
        "interview": "a job-interview answer (STAR: situation, task, action, result)",
        "conversation": "an English small-talk answer (fluency and correctness, no STAR)",
        "medical": "a patient's description of symptoms (onset, duration, severity)",
    }.get(category, "an answer in a practice conversation")
    found = {
        key: analysis.get(key)
        for key in ("missing", "words", "words_per_minute", "history_missing")
        if analysis.get(key)
    }
    found["fillers"] = [f.get("form") for f in analysis.get("fillers", [])][:10]
    system = (
        f"You give feedback on {kind}. Score structure, relevance, specificity, clarity and "
        "language from 1 (poor) to 5 (excellent), each with a one-line reason that quotes or "
        "names something in the answer. Give one strength, one improvement and a rewrite of "
        "one sentence of the answer that applies the improvement. List corrections "
        "(original, corrected, short explanation) of the learner's English only for small "
        f"talk, else an empty list. Write the reasons, strength, improvement and explanations "
        f"in {lang}; keep quotes and the rewrite in the answer's language. Reply with one "
        "JSON object with exactly these keys: structure, relevance, specificity, clarity, "
        "language (each {score, reason}), strength, improvement, rewrite, corrections."
    )
    user = json.dumps(
        {"question": question or None, "answer": answer, "analyser": found}, ensure_ascii=False
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _structured_unsupported(exc: openai.APIStatusError) -> bool:
    return exc.status_code in (400, 404, 415, 422, 501)


async def request_rubric(
    client: openai.AsyncOpenAI, *, model: str, messages: list[dict[str, str]]
) -> RubricOutcome:
    """Ask for the rubric (structured output, else JSON in text), retrying once."""
    outcome = RubricOutcome(rubric=None, model=model, attempts=0, structured=True)
    while outcome.attempts < ATTEMPTS:
        outcome.attempts += 1
        kwargs: dict[str, Any] = {"temperature": 0}
        if outcome.structured:
            kwargs["response_format"] = RESPONSE_FORMAT
        try:
            completion = await client.chat.completions.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]
                # Says what the request is for, to proxies, logs and the test server.
                extra_headers={"X-Practalk-Purpose": "feedback"},
                **kwargs,
            )
        except openai.APIStatusError as exc:
            if outcome.structured and _structured_unsupported(exc):
                # A server without structured output: ask for JSON in plain text instead.
                outcome.structured = False
                outcome.attempts -= 1
                outcome.problems.append(f"no structured output ({exc.status_code})")
                continue
            outcome.problems.append(f"status {exc.status_code}")
            continue
        except openai.OpenAIError as exc:
            outcome.problems.append(type(exc).__name__)
            continue
        outcome.model = completion.model or model
        choice = completion.choices[0] if completion.choices else None
        message = choice.message if choice else None
        try:
            outcome.rubric = parse_rubric(
                message.content if message else None, getattr(message, "refusal", None)
            )
            return outcome
        except RubricError as exc:
            outcome.problems.append(str(exc))
    return outcome
