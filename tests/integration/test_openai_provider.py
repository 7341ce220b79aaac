"""The real openai SDK, through OpenAIProvider, against FakeOpenAIServer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
from django.test import override_settings

from chat.coach.contract import ProviderConfig, ProviderError, ReplyRequest, ReplyStream, Turn
from chat.coach.openai_provider import OpenAIProvider
from chat.coach.prompts import build_messages
from chat.coach.providers import get_provider
from tests.fakes.fake_openai import FakeOpenAIServer, RequestRecord, Script, reply_tokens

MakeProvider = Callable[..., OpenAIProvider]


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeOpenAIServer) -> FakeOpenAIServer:
    fake_server.script = Script(tokens=8)
    fake_server.clear()
    return fake_server


@pytest_asyncio.fixture
async def make_provider(
    fake: FakeOpenAIServer,
) -> AsyncIterator[MakeProvider]:
    """Build providers against the fake; their clients are closed after the test."""
    made: list[OpenAIProvider] = []

    def build(**config: Any) -> OpenAIProvider:
        options: dict[str, Any] = {"base_url": fake.base_url, "timeout_seconds": 5.0}
        made.append(OpenAIProvider(ProviderConfig(**{**options, **config})))
        return made[-1]

    yield build
    for provider in made:
        await provider.aclose()


def ask(
    text: str = "Hello, I'm ready.", model: str = "", temperature: float | None = None
) -> ReplyRequest:
    return ReplyRequest(
        system_prompt="You are a friendly interviewer.",
        history=[Turn("user", text)],
        model=model,
        temperature=temperature,
    )


def last(fake: FakeOpenAIServer) -> RequestRecord:
    record = fake.last
    assert record is not None, "the fake server saw no chat completion request"
    return record


async def read_all(stream: ReplyStream) -> list[str]:
    return [token async for token in stream]


async def error_of(provider: OpenAIProvider, req: ReplyRequest) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await read_all(provider.stream(req))
    return caught.value


@pytest.mark.asyncio
async def test_streams_tokens_and_reports_usage(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    stream = make_provider(model="gpt-test").stream(ask())
    tokens = await read_all(stream)
    assert tokens == reply_tokens(8)
    assert stream.model == "gpt-test"
    assert stream.finish_reason == "stop"
    assert stream.completion_tokens == 8
    assert stream.prompt_tokens and stream.prompt_tokens > 0
    body = last(fake).body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"][0] == {"role": "system", "content": "You are a friendly interviewer."}
    assert body["messages"][-1] == {"role": "user", "content": "Hello, I'm ready."}
    assert "temperature" not in body


@pytest.mark.asyncio
async def test_persona_model_and_temperature_reach_the_server(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    stream = make_provider().stream(ask(model="persona-model", temperature=0.3))
    await read_all(stream)
    body = last(fake).body
    assert body["model"] == "persona-model"
    assert body["temperature"] == 0.3
    assert stream.model == "persona-model"


@pytest.mark.asyncio
async def test_aclose_makes_the_server_see_the_client_leave(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    fake.script = Script(tokens=1000, delay=0.05)
    stream = make_provider().stream(ask())
    got = [await anext(stream) for _ in range(3)]
    closed_at = time.monotonic()
    await stream.aclose()
    assert got == reply_tokens(3)
    assert await fake.await_until(lambda r: r[-1].client_disconnected, timeout=2)
    record = last(fake)
    assert record.disconnected_at is not None
    assert record.disconnected_at - closed_at < 1.0
    assert record.tokens_sent < 1000
    assert [token async for token in stream] == []


@pytest.mark.asyncio
async def test_aclose_from_another_task_ends_the_reading_task_quietly(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    fake.script = Script(tokens=1000, delay=0.05)
    stream = make_provider().stream(ask())
    seen: list[str] = []
    first = asyncio.Event()

    async def reader() -> None:
        async for token in stream:
            seen.append(token)
            first.set()

    task = asyncio.create_task(reader())
    await asyncio.wait_for(first.wait(), 2)
    await stream.aclose()
    await asyncio.wait_for(task, 2)  # no exception: a stopped reply is not an error
    assert 1 <= len(seen) < 1000
    assert await fake.await_until(lambda r: r[-1].client_disconnected, timeout=2)


@pytest.mark.asyncio
async def test_cancelling_the_reading_task_closes_the_upstream_response(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    fake.script = Script(tokens=1000, delay=0.05)
    stream = make_provider().stream(ask())
    first = asyncio.Event()

    async def reader() -> None:
        async for _ in stream:
            first.set()

    task = asyncio.create_task(reader())
    await asyncio.wait_for(first.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await fake.await_until(lambda r: r[-1].client_disconnected, timeout=2)


@pytest.mark.asyncio
async def test_rejected_key_is_an_auth_error_without_retry(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    fake.script = Script(status=401)
    error = await error_of(make_provider(max_retries=2), ask())
    assert error.code == "auth"
    assert "key" in str(error.message)
    assert len(fake.completions) == 1


@pytest.mark.asyncio
async def test_rate_limit_within_retries_succeeds_after_retrying(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    fake.script = Script(tokens=4, status=429, fail_times=2)
    tokens = await read_all(make_provider(max_retries=2).stream(ask()))
    assert tokens == reply_tokens(4)
    assert [r.status for r in fake.completions] == [429, 429, 200]


@pytest.mark.asyncio
async def test_lasting_rate_limit_is_a_rate_limit_error_after_retries(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    fake.script = Script(status=429)
    error = await error_of(make_provider(max_retries=2), ask())
    assert error.code == "rate_limit"
    assert error.retryable
    assert len(fake.completions) == 3


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 503])
async def test_server_failure_is_a_server_error(
    fake: FakeOpenAIServer, make_provider: MakeProvider, status: int
):
    fake.script = Script(status=status)
    error = await error_of(make_provider(max_retries=1), ask())
    assert error.code == "server"
    assert len(fake.completions) == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("stall", [True, "headers"])
async def test_stalled_server_is_a_timeout(
    fake: FakeOpenAIServer, make_provider: MakeProvider, stall: bool | str
):
    fake.script = Script(stall=stall)
    started = time.monotonic()
    error = await error_of(make_provider(timeout_seconds=0.3, max_retries=0), ask())
    assert error.code == "timeout"
    assert "too long" in str(error.message)
    assert time.monotonic() - started < 2


@pytest.mark.asyncio
async def test_stall_mid_stream_is_a_timeout_after_the_tokens_so_far(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    fake.script = Script(tokens=5, delay=5)
    stream = make_provider(timeout_seconds=0.3, max_retries=2).stream(ask())
    first = await anext(stream)
    with pytest.raises(ProviderError) as caught:
        await anext(stream)
    assert first == reply_tokens(1)[0]
    assert caught.value.code == "timeout"
    assert len(fake.completions) == 1


@pytest.mark.asyncio
async def test_connection_cut_mid_stream_is_not_retried(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    fake.script = Script(tokens=10, drop_after=5)
    stream = make_provider(max_retries=2).stream(ask())
    tokens: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for token in stream:
            tokens.append(token)
    assert caught.value.code == "connection"
    assert tokens == reply_tokens(5)
    await asyncio.sleep(0.1)  # a retry, if any, would have arrived by now
    assert len(fake.completions) == 1


@pytest.mark.asyncio
async def test_stream_ending_without_finish_reason_is_a_connection_error(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    fake.script = Script(tokens=3, finish_reason=None)
    stream = make_provider().stream(ask())
    tokens: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for token in stream:
            tokens.append(token)
    assert caught.value.code == "connection"
    assert tokens == reply_tokens(3)


@pytest.mark.asyncio
async def test_length_finish_reason_is_reported(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    fake.script = Script(tokens=3, finish_reason="length")
    stream = make_provider().stream(ask())
    await read_all(stream)
    assert stream.finish_reason == "length"


@pytest.mark.asyncio
async def test_history_is_cut_to_the_budget_in_the_request(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    history = []
    for i in range(10):
        history += [
            Turn("user", f"answer {i} " + "x" * 200),
            Turn("assistant", f"q{i} " + "y" * 200),
        ]
    history.append(Turn("user", "my latest answer"))
    req = ReplyRequest(system_prompt="Be brief.", history=history)
    await read_all(make_provider(history_budget_tokens=300).stream(req))
    messages = last(fake).body["messages"]
    sent = "".join(m["content"] for m in messages[1:])
    assert messages[0]["content"] == "Be brief."
    assert messages[-1] == {"role": "user", "content": "my latest answer"}
    assert 2 <= len(messages) - 1 < len(history)
    assert "answer 0 " not in sent
    assert "q9 " in sent
    assert len(sent) <= 300 * 4


@pytest.mark.asyncio
async def test_directive_in_last_user_message_chooses_the_behaviour(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    provider = make_provider(max_retries=0)
    limited = await error_of(provider, ask("hi [[fake:status=429]]"))
    short = await read_all(provider.stream(ask("hi [[fake:tokens=3]]")))
    hostile = "".join(await read_all(provider.stream(ask("[[fake:markdown]]"))))
    assert limited.code == "rate_limit"
    assert short == reply_tokens(3)
    assert "onerror=alert(1)" in hostile
    assert "javascript:alert(1)" in hostile
    assert "hx-swap-oob" in hostile


@pytest.mark.asyncio
async def test_directive_drop_after_cuts_the_stream(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    stream = make_provider(max_retries=2).stream(ask("go [[fake:drop_after=2,tokens=9]]"))
    tokens: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for token in stream:
            tokens.append(token)
    assert caught.value.code == "connection"
    assert tokens == reply_tokens(2)


@pytest.mark.asyncio
async def test_check_passes_for_a_healthy_server_and_fails_for_a_bad_key(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    provider = make_provider(max_retries=0)
    await provider.check()
    fake.script = Script(status=401)
    with pytest.raises(ProviderError) as caught:
        await provider.check()
    assert caught.value.code == "auth"


@pytest.mark.asyncio
async def test_get_provider_from_settings_talks_to_the_configured_server(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    with override_settings(OPENAI_API_KEY="", OPENAI_BASE_URL=fake.base_url, OPENAI_MODEL="m1"):
        provider = get_provider()
    try:
        tokens = await read_all(provider.stream(ask()))
    finally:
        await provider.aclose()
    assert tokens == reply_tokens(8)
    assert last(fake).body["model"] == "m1"
    assert last(fake).headers["authorization"] == "Bearer not-needed"
    assert provider.config.http_client == "aiohttp"  # AI_HTTP_CLIENT's default
    with override_settings(OPENAI_BASE_URL=fake.base_url, AI_HTTP_CLIENT="httpx"):
        assert get_provider().config.http_client == "httpx"


@pytest.mark.asyncio
async def test_error_event_mid_stream_is_a_server_error_after_the_tokens_so_far(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    fake.script = Script(tokens=10, error_after=4)
    stream = make_provider(max_retries=2).stream(ask())
    tokens: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for token in stream:
            tokens.append(token)
    assert caught.value.code == "server"
    assert "server had an error" in caught.value.detail
    assert tokens == reply_tokens(4)
    await asyncio.sleep(0.1)  # a retry, if any, would have arrived by now
    assert len(fake.completions) == 1


@pytest.mark.asyncio
async def test_long_history_is_sent_once_exactly_as_built(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    history = [Turn("user" if i % 2 else "assistant", f"turn {i} 안녕 ✓") for i in range(40)]
    req = ReplyRequest(system_prompt="Be brief.", history=history)
    provider = make_provider()
    await read_all(provider.stream(req))
    body = last(fake).body
    assert body["messages"] == build_messages(req, provider.config.history_budget_tokens)
    assert len(body["messages"]) == 41
    assert body["model"] == provider.config.model
    assert body["stream"] is True


@pytest.mark.asyncio
async def test_replies_reuse_one_kept_alive_connection(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    provider = make_provider()
    before = fake.connections
    for _ in range(3):
        assert await read_all(provider.stream(ask())) == reply_tokens(8)
    assert fake.connections - before == 1


@pytest.mark.asyncio
async def test_replies_are_read_through_the_sdks_aiohttp_client(
    fake: FakeOpenAIServer, make_provider: MakeProvider
):
    """openai[aiohttp]: a quarter less CPU than httpx's AnyIO sockets at 200 streams."""
    import aiohttp
    import openai

    from chat.coach import model_http

    provider = make_provider()
    assert await read_all(provider.stream(ask())) == reply_tokens(8)
    transport = provider.client()._client._transport
    assert isinstance(provider.client()._client, openai.DefaultAioHttpClient)
    assert isinstance(transport, model_http.EveryByteTransport)
    assert isinstance(transport.client, aiohttp.ClientSession)  # made by the first request
    assert len(fake.completions) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
async def test_a_stream_cut_while_nobody_read_it_keeps_every_token_that_came(
    fake: FakeOpenAIServer, make_provider: MakeProvider, client: str
):
    """Tokens 2-5 and the cut reach aiohttp's buffer while the reader is busy elsewhere:
    aiohttp's own readers raise the cut first and lose them; ours hand them over first."""
    fake.script = Script(tokens=10, drop_after=5, delay=0.02)
    provider = make_provider(max_retries=0, http_client=client)
    stream = provider.stream(ask())
    tokens = [await anext(stream)]
    await asyncio.sleep(0.4)  # a busy loop: the rest of the reply and the cut arrive
    assert fake.last is not None and fake.last.tokens_sent == 5
    with pytest.raises(ProviderError) as caught:
        async for token in stream:
            tokens.append(token)
    assert caught.value.code == "connection"
    assert tokens == reply_tokens(5)
    transport = type(provider.client()._client._transport).__name__
    assert transport == {"aiohttp": "EveryByteTransport", "httpx": "AsyncHTTPTransport"}[client]


def test_a_client_left_on_a_closed_loop_is_let_go_quietly(fake: FakeOpenAIServer, recwarn):
    """One loop per test (and per management command): the next loop gets its own client,
    and the old one's aiohttp session is marked closed instead of warning when collected."""
    import gc

    config = ProviderConfig(base_url=fake.base_url, api_key="k", max_retries=0)
    provider = OpenAIProvider(config)

    async def one_reply(*, then_close: bool = False) -> Any:
        assert await read_all(provider.stream(ask())) == reply_tokens(8)
        client = provider.client()
        if then_close:
            await provider.aclose()
        return client

    first = asyncio.run(one_reply())
    session = first._client._transport.client
    assert not session.closed
    second = asyncio.run(one_reply(then_close=True))
    assert second is not first and session.closed
    del first, session
    gc.collect()
    assert not [w for w in recwarn if "Unclosed" in str(w.message)]
