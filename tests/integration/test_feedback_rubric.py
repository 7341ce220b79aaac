"""The model's part of feedback: the real openai SDK against the fake server's scripted JSON."""

from __future__ import annotations

import json

import openai
import pytest

from chat.coach import rubric
from tests.fakes.fake_openai import GOOD_RUBRIC, FakeOpenAIServer, Script

MESSAGES = rubric.build_messages(
    question="Tell me about a time you fixed a slow process.",
    answer="At my last job releases took two days. I automated the tests.",
    category="interview",
    analysis={"missing": ["result"], "words": 11, "fillers": []},
    language="en",
)


async def ask(fake: FakeOpenAIServer, **script: object) -> rubric.RubricOutcome:
    fake.script = Script(**script)  # type: ignore[arg-type]
    fake.clear()
    client = openai.AsyncOpenAI(api_key="x", base_url=fake.base_url, max_retries=0)
    try:
        return await rubric.request_rubric(client, model="fake-model", messages=MESSAGES)
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_a_valid_rubric_is_accepted_at_the_first_attempt(fake_openai):
    outcome = await ask(fake_openai)
    assert outcome.rubric is not None and outcome.attempts == 1 and outcome.structured
    assert outcome.rubric["structure"] == GOOD_RUBRIC["structure"]
    assert outcome.rubric["corrections"][0]["corrected"] == "I have seen"
    sent = fake_openai.feedback_requests[0].body
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"]["required"][:5] == list(
        rubric.RUBRIC_AXES
    )
    assert fake_openai.completions == []  # not counted as a reply


@pytest.mark.parametrize("mode", ["broken", "missing", "wrong_types", "out_of_range", "refusal"])
@pytest.mark.asyncio
async def test_a_bad_answer_is_asked_once_more_then_given_up(fake_openai, mode):
    outcome = await ask(fake_openai, rubric=mode)
    assert outcome.rubric is None
    assert outcome.attempts == 2
    assert len(fake_openai.feedback_requests) == 2
    assert len(outcome.problems) == 2


@pytest.mark.parametrize("mode", ["broken", "missing", "wrong_types", "out_of_range", "refusal"])
@pytest.mark.asyncio
async def test_one_bad_answer_then_a_good_one_is_accepted(fake_openai, mode):
    outcome = await ask(fake_openai, rubric=mode, rubric_bad_times=1)
    assert outcome.rubric is not None and outcome.attempts == 2


@pytest.mark.asyncio
async def test_a_server_without_structured_output_is_asked_for_json_in_text(fake_openai):
    outcome = await ask(fake_openai, structured=False, rubric="fenced")
    assert outcome.rubric is not None and not outcome.structured
    first, second = fake_openai.feedback_requests
    assert first.status == 400 and "response_format" in first.body
    assert "response_format" not in second.body
    assert outcome.attempts == 1


def test_parse_rejects_a_score_out_of_range_and_strings_for_numbers():
    bad_axes = [
        {"score": 0, "reason": "x"},
        {"score": 6, "reason": "x"},
        {"score": "4", "reason": "x"},
        {"score": True, "reason": "x"},
        {"score": 3},
    ]
    for bad in bad_axes:
        with pytest.raises(rubric.RubricError):
            rubric.parse_rubric(json.dumps({**GOOD_RUBRIC, "clarity": bad}))


def test_parse_reads_json_after_a_sentence_or_in_a_fence():
    text = "Sure! ```json\n" + json.dumps(GOOD_RUBRIC) + "\n```"
    assert rubric.parse_rubric(text)["relevance"]["score"] == 5


def test_parse_treats_a_refusal_as_no_rubric():
    with pytest.raises(rubric.RubricError, match="refused"):
        rubric.parse_rubric(None, "I can't help with that.")


def test_the_prompt_asks_for_the_interface_language():
    korean = rubric.build_messages(
        question="", answer="Hi", category="conversation", analysis={}, language="ko"
    )
    assert "in Korean" in korean[0]["content"]
