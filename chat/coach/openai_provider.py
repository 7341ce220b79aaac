"""Replies from any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp) via the SDK."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import httpx2
import openai
import orjson

from chat.coach import model_http
from chat.coach.contract import (
    OUT_OF_CREDIT,
    ProviderConfig,
    ProviderError,
    ReplyRequest,
    ReplyStream,
)
from chat.coach.prompts import build_messages
from chat.coach.sse import Event, SSEDecoder

logger = logging.getLogger(__name__)


# What reading a response body can raise (the SDK's own stream maps the same ones to
# APITimeoutError / APIConnectionError): httpx2's, plus TLS and AnyIO errors it leaves unmapped.
_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    httpx2.RequestError,
    ssl.SSLError,
    anyio.EndOfStream,
)
# After [DONE], how long the rest of the body may take before the connection is dropped
# instead of kept for the next reply (the SDK's own limit).
DRAIN_SECONDS = 0.1
# What can end a started stream: the SDK's errors and the transport's.
_STREAM_ERRORS: tuple[type[Exception], ...] = (openai.OpenAIError, *_TRANSPORT_ERRORS)


def _map_error(exc: BaseException) -> ProviderError:
    """Turn an SDK exception into a ProviderError with a learner-facing message."""
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
        return ProviderError("timeout", detail=detail)
    if isinstance(exc, (openai.APIConnectionError, *_TRANSPORT_ERRORS)):
        return ProviderError("connection", detail=detail)
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return ProviderError("auth", detail=detail)
    if isinstance(exc, openai.RateLimitError):
        if getattr(exc, "code", None) == "insufficient_quota":
            return ProviderError("rate_limit", OUT_OF_CREDIT, detail=detail)
        return ProviderError("rate_limit", detail=detail)
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500:
            return ProviderError("server", detail=detail)
        if exc.status_code in (400, 404, 413, 422):
            return ProviderError("bad_request", detail=detail)
        return ProviderError("unknown", detail=detail)
    if isinstance(exc, openai.APIError):
        # An error event inside a stream that had already started.
        return ProviderError("server", detail=detail)
    return ProviderError("unknown", detail=detail)


class _OpenAIReplyStream(ReplyStream):
    """A reply read from the raw SSE body: the SDK sends the request (its retries, timeouts
    and error classes), the events are decoded here with ``orjson.loads`` (a fifth of
    ``json.loads``'s time per chunk: the largest cost on long replies, bench part "decode").

    The SDK's own ``AsyncStream`` builds pydantic models for every chunk, which was 85 % of
    the server's CPU per token (bench/results.md); this reads the same bytes for a fifth.
    """

    def __init__(self, provider: OpenAIProvider, request: ReplyRequest) -> None:
        super().__init__(request.model or provider.config.model)
        self._provider = provider
        self._request = request
        self._response: openai.AsyncAPIResponse[Any] | None = None  # once the request was answered
        self._chunks: AsyncGenerator[bytes, None] | None = None
        self._decoder = SSEDecoder()
        self._texts: deque[str] = deque()  # decoded but not yet returned
        self._ended = False  # [DONE] seen, or the body ended
        self._failed: openai.APIError | None = None  # an error event behind queued text
        self._done = False

    async def _open(self) -> None:
        config = self._provider.config
        kwargs: dict[str, Any] = {}
        if self._request.temperature is not None:
            kwargs["temperature"] = self._request.temperature
        # The messages go through `extra_body`, which the SDK merges into the JSON as is:
        # as `messages` they would be walked by its TypedDict transform on every request
        # (3.6-5.7 ms for 40 messages, bench/results.md). `messages=[]` only satisfies its
        # signature; extra_body's key replaces it, so the body holds the history once.
        completions = self._provider.client().chat.completions
        # The raw response: its body is read below, never parsed into the SDK's models.
        opening = completions.with_streaming_response.create(
            model=self.model,
            messages=[],
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"messages": build_messages(self._request, config.history_budget_tokens)},
            **kwargs,
        )
        self._response = await opening.__aenter__()  # closed by _close_upstream()
        self._chunks = self._response.http_response.aiter_bytes()

    async def __anext__(self) -> str:
        if self._done or self._closed:
            raise StopAsyncIteration
        try:
            if self._response is None:
                # The SDK retries 429/5xx/timeouts here, before any text was shown.
                await self._open()
                if self.closed:  # aclose() raced with the request
                    await self._close_upstream()
                    raise StopAsyncIteration
            texts = self._texts
            while not texts:
                if self._failed is not None:
                    raise self._failed
                chunks = self._chunks
                if chunks is None or self.closed:  # closed while we were away
                    raise StopAsyncIteration
                if self._ended:
                    await self._drain(chunks)
                    raise StopAsyncIteration
                # Mid-stream failures surface from here and are never retried: the learner
                # has already seen the partial text.
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    self._ended = True
                    continue
                for event in self._decoder.feed(chunk):
                    try:
                        if self._absorb(event):
                            break  # [DONE]: anything after it is not part of the reply
                    except openai.APIError as exc:
                        if not texts:
                            raise
                        # An error event read in the same chunk as text before it: the
                        # text is the reply so far, shown first; the error comes next.
                        self._failed = exc
                        break
            return texts.popleft()
        except StopAsyncIteration:
            self._done = True
            await self._close_upstream()
            if not self._closed and self.finish_reason is None:
                # The body ended cleanly but the model never said it was finished.
                raise ProviderError(
                    "connection", detail="stream ended without finish_reason"
                ) from None
            raise
        except asyncio.CancelledError:
            # The task that was reading went away (e.g. Stop): don't leave the model talking.
            self._done = True
            await self._close_upstream()
            raise
        except _STREAM_ERRORS as exc:
            self._done = True
            await self._close_upstream()
            if self._closed:
                raise StopAsyncIteration from None
            error = _map_error(exc)
            logger.warning("AI reply failed: %s", error)
            raise error from exc
        except Exception as exc:
            # Anything else (e.g. a chunk that is not JSON) still reaches callers as a
            # ProviderError, so they only need to handle one exception type.
            self._done = True
            await self._close_upstream()
            if self._closed:
                raise StopAsyncIteration from None
            logger.exception("AI reply failed unexpectedly")
            raise ProviderError("unknown", detail=f"{type(exc).__name__}: {exc}") from exc

    def _absorb(self, event: Event) -> bool:
        """Record model, finish reason and usage from one event; queue its text.

        Returns True at [DONE] (the end of the reply).
        """
        data = event.data
        if data.startswith(b"[DONE]"):
            self._ended = True
            return True
        chunk = orjson.loads(data)
        if not isinstance(chunk, dict):
            raise ValueError(f"unexpected chunk {data[:200]!r}")
        error = chunk.get("error")
        if error or event.name == "error":
            # What the SDK's stream raises for an error object inside a started stream.
            message = error.get("message") if isinstance(error, dict) else None
            if not isinstance(message, str) or not message:
                message = "An error occurred during streaming"
            assert self._response is not None
            request = self._response.http_response.request
            raise openai.APIError(message, request, body=error or chunk)
        model = chunk.get("model")
        if model and isinstance(model, str):
            self.model = model
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = usage.get("prompt_tokens")
            self.completion_tokens = usage.get("completion_tokens")
        text = ""
        for choice in chunk.get("choices") or ():
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if content and isinstance(content, str):
                    text += content
        if text:
            self._texts.append(text)
        return False

    async def _drain(self, chunks: AsyncGenerator[bytes, None]) -> None:
        """Read the rest of the body after [DONE] so the kept-alive connection can be reused."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(DRAIN_SECONDS):
                async for _chunk in chunks:
                    pass

    async def _close_upstream(self) -> None:
        response, self._response = self._response, None
        chunks, self._chunks = self._chunks, None
        if response is not None:
            try:
                await response.close()
            except Exception:  # closing a broken connection must not hide the real outcome
                logger.debug("closing the AI response failed", exc_info=True)
        if chunks is not None:
            # Finalise the body iterator now rather than in the garbage collector; it may be
            # running in another task (aclose() during a read), which raises RuntimeError.
            with contextlib.suppress(Exception):
                await chunks.aclose()

    async def aclose(self) -> None:
        """Close the upstream HTTP response at once, so the model stops generating."""
        self._closed = True
        await self._close_upstream()


def _forget(client: openai.AsyncOpenAI) -> None:
    """Let go of a client whose event loop has closed (tests run one loop per test).

    Its aiohttp session cannot be closed any more (closing awaits on that loop), and left
    alone it logs "Unclosed client session" when collected. Marking its connector closed
    is all that is left to do: aiohttp does only that itself when the loop is closed.
    """
    transport = getattr(client._client, "_transport", None)
    session = getattr(transport, "client", None)
    connector = getattr(session, "connector", None)
    if connector is not None:
        with contextlib.suppress(Exception):
            connector._close()


class OpenAIProvider:
    """Streams replies from an OpenAI-compatible server through the openai SDK."""

    name = "openai"
    offline = False

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        # An AsyncOpenAI client's connection pool belongs to the loop that first used it,
        # so keep one client per running loop and reuse it for every reply in that loop.
        self._clients: dict[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = {}

    def client(self) -> openai.AsyncOpenAI:
        """The AsyncOpenAI client for the running event loop (created once per loop)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for old in [known for known in self._clients if known.is_closed()]:
                _forget(self._clients.pop(old))
            timeout = self.config.timeout_seconds
            client = openai.AsyncOpenAI(
                # The SDK's aiohttp client, reading every byte of a dropped stream, or its
                # httpx one (model_http.py).
                http_client=model_http.http_client(self.config.http_client),
                api_key=self.config.api_key or "not-needed",
                base_url=self.config.base_url or None,
                # Connect fails fast; read is the longest silence we accept between chunks.
                timeout=openai.Timeout(timeout, connect=min(5.0, timeout)),
                max_retries=self.config.max_retries,
            )
            self._clients[loop] = client
        return client

    def stream(self, request: ReplyRequest) -> ReplyStream:
        """Start a streamed reply (the HTTP request is sent on first iteration)."""
        return _OpenAIReplyStream(self, request)

    async def aclose(self) -> None:
        """Close the running loop's client and its pooled connections (for shutdown, tests)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    async def check(self) -> None:
        """List models to prove the server answers and accepts our key."""
        try:
            await self.client().models.list()
        except openai.OpenAIError as exc:
            raise _map_error(exc) from exc

    def __repr__(self) -> str:
        return f"<OpenAIProvider base_url={self.config.base_url!r} model={self.config.model!r}>"
