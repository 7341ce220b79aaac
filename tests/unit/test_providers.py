"""Offline provider, history fitting and provider selection."""

from __future__ import annotations

import asyncio
import time

import pytest
from django.test import override_settings

from chat.coach.contract import ProviderConfig, ProviderError, ReplyRequest, Turn
from chat.coach.offline import OfflineProvider, offline_reply
from chat.coach.openai_provider import OpenAIProvider
from chat.coach.prompts import build_messages, estimate_tokens, fit_history
from chat.coach.providers import get_provider

BANK = ["Tell me about yourself.", "Why this company?", "Describe a conflict you solved."]
LONG_ANSWER = (
    "In my last job I led a team of four people to migrate our billing system, "
    "and we cut the monthly error rate from 3 percent to under 1 percent in two months."
)
NO_KEY = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}


def user(text: str) -> Turn:
    return Turn("user", text)


def coach(text: str) -> Turn:
    return Turn("assistant", text)


def request(
    history: list[Turn],
    question_bank: list[str] | None = None,
    opening_line: str = "",
    *,
    category: str = "interview",
    variant: int = 0,
) -> ReplyRequest:
    return ReplyRequest(
        system_prompt="You are an interviewer.",
        history=history,
        question_bank=question_bank or [],
        opening_line=opening_line,
        category=category,
        variant=variant,
    )


async def collect(provider: OfflineProvider, req: ReplyRequest) -> list[str]:
    return [token async for token in provider.stream(req)]


# ----- offline interviewer -----


@pytest.mark.parametrize(
    ("answer", "nudged"),
    [
        (
            "Last year I led a team of four at my job. I planned the release and I shipped the "
            "payment feature two weeks early, so the client renewed for two more years.",
            False,
        ),
        (
            "Last year our release was slow. I rewrote the build scripts and I cached the "
            "dependencies, and as a result the whole team was much happier with releases.",
            True,
        ),
    ],
)
def test_offline_asks_for_a_number_only_when_the_result_has_none(answer, nudged):
    reply = offline_reply(request([user(answer)], question_bank=BANK))
    assert ("number" in reply.lower()) is nudged


def test_offline_quotes_the_answer_before_its_advice():
    reply = offline_reply(request([user(LONG_ANSWER)], question_bank=BANK))
    quoted = reply.split("“", 1)[1].split("”", 1)[0]
    assert quoted and quoted in LONG_ANSWER


def test_offline_asks_for_the_learners_own_part_when_the_answer_says_we_throughout():
    answer = (
        "Last spring our team had a broken deploy pipeline. We had to fix it before the launch. "
        "We rewrote the scripts and we added tests, and the launch went well in the end."
    )
    reply = offline_reply(request([user(answer)], question_bank=BANK))
    assert "“we”" in reply or "yours" in reply
    assert reply.endswith(BANK[0])


def test_offline_small_talk_corrects_and_follows_up_without_interview_advice():
    answer = "Yesterday I go to the park and I have saw many dog."
    reply = offline_reply(request([user(answer)], question_bank=BANK, category="conversation"))
    assert "“I go” → “I went”" in reply
    assert "the park" in reply
    assert reply.endswith("?")
    for advice in ("result", "STAR", "number", BANK[0]):
        assert advice not in reply


def test_offline_medical_asks_what_the_history_lacks():
    answer = "I have a headache, about seven out of ten."
    reply = offline_reply(request([user(answer)], question_bank=BANK, category="medical"))
    assert "When did it start?" in reply


def test_offline_medical_skips_bank_questions_already_answered():
    bank = ["When did the pain start?", "How long does it last?", "Do you take any medicine?"]
    answer = "It started on Monday, it lasts all day and it is about seven out of ten."
    reply = offline_reply(request([user(answer)], question_bank=bank, category="medical"))
    assert reply.endswith("Do you take any medicine?")
    assert bank[0] not in reply and bank[1] not in reply


def test_offline_regenerate_gives_another_wording():
    req = request([user(LONG_ANSWER)], question_bank=BANK)
    again = request([user(LONG_ANSWER)], question_bank=BANK, variant=1)
    assert offline_reply(req) != offline_reply(again)
    assert offline_reply(again).endswith(BANK[0])


def test_offline_asks_question_bank_in_order():
    first = offline_reply(request([user(LONG_ANSWER)], question_bank=BANK))
    second = offline_reply(
        request([user(LONG_ANSWER), coach("q"), user(LONG_ANSWER)], question_bank=BANK)
    )
    assert first.endswith(BANK[0])
    assert second.endswith(BANK[1])


def test_offline_counts_questions_after_the_opening_line():
    history = [coach("Welcome! Ready?"), user(LONG_ANSWER)]
    reply = offline_reply(request(history, question_bank=BANK, opening_line="Welcome! Ready?"))
    assert reply.endswith(BANK[0])


def test_offline_wraps_around_and_says_so():
    history: list[Turn] = []
    for _ in range(len(BANK)):
        history += [user(LONG_ANSWER), coach("q")]
    reply = offline_reply(request([*history, user(LONG_ANSWER)], question_bank=BANK))
    assert reply.endswith(BANK[0])
    assert "go round again" in reply


def test_offline_first_reply_is_the_opening_line_when_history_is_empty():
    reply = offline_reply(request([], question_bank=BANK, opening_line="Hi, I'm Sam."))
    assert reply == "Hi, I'm Sam."


def test_offline_first_reply_without_opening_line_greets_and_asks_first_question():
    reply = offline_reply(request([], question_bank=BANK))
    assert reply.startswith("Hello")
    assert reply.endswith(BANK[0])


def test_offline_asks_for_an_example_after_a_very_short_answer():
    reply = offline_reply(request([user("I like computers.")], question_bank=BANK))
    assert "example" in reply
    assert reply.endswith(BANK[0])


def test_offline_without_question_bank_asks_a_generic_follow_up():
    reply = offline_reply(request([user(LONG_ANSWER)]))
    assert reply.endswith("?")
    assert len(reply.split()) > 5


def test_offline_reply_is_deterministic():
    req = request([user(LONG_ANSWER)], question_bank=BANK)
    assert offline_reply(req) == offline_reply(req)


@pytest.mark.asyncio
async def test_offline_streams_word_tokens_with_leading_spaces():
    req = request([user(LONG_ANSWER)], question_bank=BANK)
    stream = OfflineProvider(ProviderConfig(offline_token_delay=0)).stream(req)
    tokens = [token async for token in stream]
    assert "".join(tokens) == offline_reply(req)
    assert len(tokens) > 5
    assert all(token.startswith(" ") for token in tokens[1:])
    assert stream.model == "offline"
    assert stream.finish_reason == "stop"
    assert stream.completion_tokens == len(tokens)
    assert stream.prompt_tokens and stream.prompt_tokens > 0


@pytest.mark.asyncio
async def test_offline_waits_the_token_delay_between_tokens():
    req = request([user(LONG_ANSWER)], question_bank=BANK)
    started = time.monotonic()
    tokens = await collect(OfflineProvider(ProviderConfig(offline_token_delay=0.01)), req)
    assert time.monotonic() - started >= (len(tokens) - 1) * 0.01 * 0.9


@pytest.mark.asyncio
async def test_offline_with_zero_delay_still_yields_to_the_loop():
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    req = request([user(LONG_ANSWER)], question_bank=BANK)
    tokens = await collect(OfflineProvider(ProviderConfig(offline_token_delay=0)), req)
    done = True
    await task
    assert ticks >= len(tokens) - 1


@pytest.mark.asyncio
async def test_offline_aclose_stops_the_stream():
    req = request([user(LONG_ANSWER)], question_bank=BANK)
    stream = OfflineProvider(ProviderConfig(offline_token_delay=0)).stream(req)
    first = await anext(stream)
    await stream.aclose()
    assert first
    assert [token async for token in stream] == []
    assert stream.finish_reason is None


# ----- history budget -----


def test_fit_history_keeps_everything_that_fits():
    history = [user("a" * 40), coach("b" * 40), user("c" * 40)]
    assert fit_history(history, 100) == history


def test_fit_history_drops_the_oldest_turns_first():
    history = [user("a" * 400), coach("b" * 40), user("c" * 40)]
    assert fit_history(history, 25) == history[1:]


def test_fit_history_never_skips_a_turn_to_fit_an_older_one():
    history = [user("tiny"), coach("b" * 400), user("c" * 40)]
    assert fit_history(history, 50) == history[2:]


def test_fit_history_truncates_an_oversized_last_turn_from_the_start():
    last = user("old words " * 100 + "THE END")
    kept = fit_history([user("earlier"), last], 10)
    assert len(kept) == 1
    assert kept[0].role == "user"
    assert kept[0].content.endswith("THE END")
    assert kept[0].content.startswith("…")
    assert estimate_tokens(kept[0].content) <= 10


def test_fit_history_of_nothing_is_nothing():
    assert fit_history([], 100) == []


def test_build_messages_puts_system_prompt_and_question_bank_first():
    req = request([user("hello")], question_bank=BANK)
    messages = build_messages(req, 1000)
    assert messages[0]["role"] == "system"
    assert "You are an interviewer." in messages[0]["content"]
    assert BANK[2] in messages[0]["content"]
    assert messages[1:] == [{"role": "user", "content": "hello"}]


# ----- errors -----


def test_provider_error_has_learner_message_and_retry_hint():
    error = ProviderError("rate_limit", detail="429 from upstream")
    assert "rate limit" in str(error.message)
    assert error.retryable
    assert not ProviderError("auth").retryable
    assert ProviderError("something odd").code == "unknown"


# ----- selection -----


@override_settings(**NO_KEY)
def test_get_provider_is_offline_without_key_or_url():
    provider = get_provider()
    assert isinstance(provider, OfflineProvider)
    assert provider.offline
    assert provider.name == "offline"


@override_settings(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL="")
def test_get_provider_uses_openai_with_a_key():
    provider = get_provider()
    assert isinstance(provider, OpenAIProvider)
    assert provider.name == "openai"
    assert not provider.offline


@override_settings(
    OPENAI_API_KEY="",
    OPENAI_BASE_URL="http://127.0.0.1:9/v1",
    OPENAI_MODEL="llama3",
    AI_TIMEOUT_SECONDS=7,
    AI_MAX_RETRIES=1,
    AI_HISTORY_BUDGET_TOKENS=500,
)
def test_get_provider_uses_openai_with_only_a_base_url_and_reads_settings():
    provider = get_provider()
    assert isinstance(provider, OpenAIProvider)
    assert provider.config == ProviderConfig(
        api_key="",
        base_url="http://127.0.0.1:9/v1",
        model="llama3",
        timeout_seconds=7.0,
        max_retries=1,
        history_budget_tokens=500,
        offline_token_delay=provider.config.offline_token_delay,
    )


def test_get_provider_caches_one_instance_per_settings():
    with override_settings(OPENAI_API_KEY="sk-a", OPENAI_BASE_URL=""):
        first, again = get_provider(), get_provider()
    with override_settings(OPENAI_API_KEY="sk-b", OPENAI_BASE_URL=""):
        other = get_provider()
    assert first is again
    assert other is not first


def test_openai_client_is_reused_within_a_loop_and_separate_per_loop():
    provider = OpenAIProvider(ProviderConfig(api_key="sk-test"))

    async def clients() -> tuple[object, object]:
        return provider.client(), provider.client()

    one, same = asyncio.run(clients())
    other, _ = asyncio.run(clients())
    assert one is same
    assert other is not one
