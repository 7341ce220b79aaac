"""OpenAIProvider's stream reading, with the network cut exactly where a test wants.

The real SDK client over an httpx2 MockTransport: each byte piece below arrives as one
read, so lines and UTF-8 characters split across reads are tested deterministically (the
fake server in tests/integration cannot promise where TCP cuts).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import openai
import pytest

from chat.coach.contract import ProviderConfig, ProviderError, ReplyRequest, Turn
from chat.coach.openai_provider import OpenAIProvider

Body = Callable[[], AsyncIterator[bytes]]


def event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def delta(text: str) -> bytes:
    return event({"model": "m-1", "choices": [{"index": 0, "delta": {"content": text}}]})


FINISH = event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
USAGE = event({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}})
DONE = b"data: [DONE]\n\n"


def pieces(*parts: bytes, fail: Exception | None = None) -> Body:
    async def body() -> AsyncIterator[bytes]:
        for part in parts:
            yield part
            await asyncio.sleep(0)
        if fail is not None:
            raise fail

    return body


class Reply:
    """What reading one reply gave."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.error: ProviderError | None = None
        self.stream: Any = None
        self.requests: list[httpx2.Request] = []


async def read(body: Body) -> Reply:
    """Stream one reply whose response body is `body`."""
    reply = Reply()

    def handler(request: httpx2.Request) -> httpx2.Response:
        reply.requests.append(request)
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    provider = OpenAIProvider(ProviderConfig(base_url="http://model.test/v1", max_retries=2))
    provider._clients[asyncio.get_running_loop()] = openai.AsyncOpenAI(
        api_key="k",
        base_url="http://model.test/v1",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )
    reply.stream = provider.stream(ReplyRequest(system_prompt="S", history=[Turn("user", "안녕")]))
    try:
        async for token in reply.stream:
            reply.tokens.append(token)
    except ProviderError as exc:
        reply.error = exc
    finally:
        await provider.aclose()
    return reply


@pytest.mark.asyncio
async def test_lines_and_korean_split_across_reads_come_out_whole():
    body = delta("안녕하세요") + delta(" 면접을") + delta(" 시작합니다") + FINISH + USAGE + DONE
    korean = body.index("하".encode()) + 1  # inside the three bytes of 하
    cuts = [3, 10, korean, body.index(b"\n\n") + 1, len(body) - 5]
    parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    reply = await read(pieces(*parts))
    stream = reply.stream
    assert reply.error is None
    assert reply.tokens == ["안녕하세요", " 면접을", " 시작합니다"]
    assert (stream.finish_reason, stream.prompt_tokens, stream.completion_tokens) == ("stop", 7, 3)
    assert stream.model == "m-1"
    sent = json.loads(reply.requests[0].content)
    assert sent["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "안녕"},
    ]


@pytest.mark.asyncio
async def test_several_events_in_one_read_are_each_a_token():
    reply = await read(pieces(delta("a") + delta("b") + FINISH + DONE))
    assert reply.tokens == ["a", "b"]
    assert reply.stream.finish_reason == "stop"


@pytest.mark.asyncio
async def test_anything_after_done_is_ignored():
    reply = await read(pieces(delta("a") + FINISH + DONE + delta("late") + b"junk"))
    assert reply.tokens == ["a"]
    assert reply.error is None


@pytest.mark.asyncio
async def test_error_object_mid_stream_is_a_server_error():
    error = event({"error": {"message": "overloaded", "type": "server_error"}})
    reply = await read(pieces(delta("a"), error, delta("never")))
    assert reply.tokens == ["a"]
    assert reply.error is not None
    assert reply.error.code == "server"
    assert "overloaded" in reply.error.detail
    assert len(reply.requests) == 1  # a started reply is never retried


@pytest.mark.asyncio
async def test_named_error_event_is_a_server_error():
    reply = await read(pieces(delta("a"), b'event: error\ndata: {"message": "boom"}\n\n'))
    assert reply.error is not None
    assert reply.error.code == "server"


@pytest.mark.asyncio
async def test_a_chunk_that_is_not_json_is_an_unknown_error():
    reply = await read(pieces(delta("a"), b"data: {not json\n\n"))
    assert reply.error is not None
    assert reply.error.code == "unknown"


@pytest.mark.asyncio
async def test_body_ending_inside_an_event_is_a_connection_error():
    reply = await read(pieces(delta("a"), FINISH[:20]))
    assert reply.tokens == ["a"]
    assert reply.error is not None
    assert reply.error.code == "connection"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("failure", "code"),
    [(httpx2.ReadError("reset"), "connection"), (httpx2.ReadTimeout("slow"), "timeout")],
)
async def test_transport_failure_mid_body_keeps_the_sdk_error_codes(failure: Exception, code: str):
    reply = await read(pieces(delta("a"), delta("b"), fail=failure))
    assert reply.tokens == ["a", "b"]
    assert reply.error is not None
    assert reply.error.code == code
    assert len(reply.requests) == 1
