"""AI providers: stream a coach's reply token by token.

Plain Python on purpose: Django settings are read only in :func:`get_provider`, so the
streaming code, benchmarks and tests can build providers directly from a
:class:`ProviderConfig`.

* :class:`OpenAIProvider` talks to any OpenAI-compatible server through the ``openai`` SDK.
* :class:`OfflineProvider` is the default with no key or URL: a simple deterministic
  interviewer that works through the persona's question bank.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import ssl
import zlib
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import anyio
import httpx2
import openai
from django.utils.translation import gettext, gettext_lazy

from chat.sse import Event, SSEDecoder

logger = logging.getLogger(__name__)

ERROR_CODES = ("timeout", "auth", "rate_limit", "server", "connection", "bad_request", "unknown")

# Learner-facing messages per error code (lazy: translated when shown).
ERROR_MESSAGES: dict[str, Any] = {
    "timeout": gettext_lazy("The AI coach took too long to answer. Please try again."),
    "auth": gettext_lazy("The AI service rejected our key — tell the site staff."),
    "rate_limit": gettext_lazy(
        "The AI service is busy right now (rate limit). Try again in a minute."
    ),
    "server": gettext_lazy("The AI service had a problem on its side. Try again in a moment."),
    "connection": gettext_lazy(
        "The connection to the AI service broke before the reply was finished. Try again."
    ),
    "bad_request": gettext_lazy(
        "The AI service could not handle this conversation. Try a shorter message "
        "or start a new conversation."
    ),
    "unknown": gettext_lazy("Something went wrong while talking to the AI service."),
}
_OUT_OF_CREDIT = gettext_lazy("The AI service account has run out of credit — tell the site staff.")

# Codes where trying the same request again later may well work.
RETRYABLE_CODES = frozenset({"timeout", "rate_limit", "server", "connection"})

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


@dataclass(frozen=True)
class Turn:
    """One message of conversation history."""

    role: str  # "user" | "assistant"
    content: str


@dataclass(frozen=True)
class ReplyRequest:
    """Everything a provider needs to write the coach's next reply."""

    system_prompt: str
    history: list[Turn]  # oldest first, ends with the learner's latest message (may be empty)
    question_bank: list[str] = field(default_factory=list)
    opening_line: str = ""
    model: str = ""  # per-persona override, "" = provider default
    temperature: float | None = None


class ProviderError(Exception):
    """A reply failed; ``message`` is safe to show the learner, ``detail`` is for logs."""

    def __init__(self, code: str, message: Any = None, *, detail: str = "") -> None:
        if code not in ERROR_CODES:
            code = "unknown"
        self.code = code
        self.message = message if message is not None else ERROR_MESSAGES[code]
        self.detail = detail
        super().__init__(code, detail)

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later."""
        return self.code in RETRYABLE_CODES

    def __str__(self) -> str:
        text = f"[{self.code}] {self.message}"
        return f"{text} ({self.detail})" if self.detail else text


class ReplyStream:
    """Async iterator of reply text deltas; ``aclose()`` stops the model at once."""

    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None

    def __init__(self, model: str) -> None:
        self.model = model
        self.prompt_tokens = None
        self.completion_tokens = None
        self.finish_reason = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once aclose() was called."""
        return self._closed

    def __aiter__(self) -> ReplyStream:
        return self

    async def __anext__(self) -> str:
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop the reply and release the upstream connection."""
        self._closed = True

    async def __aenter__(self) -> ReplyStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@runtime_checkable
class Provider(Protocol):
    """Something that streams a coach's reply."""

    name: str  # "openai" | "offline"
    offline: bool

    def stream(self, request: ReplyRequest) -> ReplyStream:
        """Start a reply (lazily: nothing is sent until the first iteration)."""
        ...

    async def check(self) -> None:
        """Raise ProviderError when the provider cannot be reached (for health checks)."""
        ...

    async def aclose(self) -> None:
        """Release the running loop's connections (app shutdown, tests)."""
        ...


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


# ---------------------------------------------------------------------------- OpenAI


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
            return ProviderError("rate_limit", _OUT_OF_CREDIT, detail=detail)
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


class _OpenAIReplyStream(ReplyStream):
    """A reply read from the raw SSE body: the SDK sends the request (its retries, timeouts
    and error classes), the events are decoded here with ``json.loads``.

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
                if self._closed:  # aclose() raced with the request
                    await self._close_upstream()
                    raise StopAsyncIteration
            texts = self._texts
            while not texts:
                chunks = self._chunks
                if chunks is None or self._closed:  # closed while we were away
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
                    self._absorb(event)
                    if self._ended:
                        break  # anything after [DONE] is not part of the reply
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
        except (openai.OpenAIError, *_TRANSPORT_ERRORS) as exc:
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

    def _absorb(self, event: Event) -> None:
        """Record model, finish reason and usage from one event; queue its text."""
        data = event.data
        if data.startswith(b"[DONE]"):
            self._ended = True
            return
        chunk = json.loads(data)
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


@dataclass(frozen=True)
class ProviderConfig:
    """Settings that define a provider (hashable, so providers can be cached by it)."""

    api_key: str = ""
    base_url: str = ""
    model: str = "gpt-4o-mini"
    timeout_seconds: float = 30.0
    max_retries: int = 2
    history_budget_tokens: int = 3000
    offline_token_delay: float = 0.03

    @property
    def uses_openai(self) -> bool:
        """A key or a base URL selects the OpenAI-compatible provider."""
        return bool(self.api_key or self.base_url)


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
                del self._clients[old]
            timeout = self.config.timeout_seconds
            client = openai.AsyncOpenAI(
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


# ---------------------------------------------------------------------------- offline


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


# ---------------------------------------------------------------------------- selection


def build_provider(config: ProviderConfig) -> Provider:
    """A fresh provider for a config (prefer get_provider(), which caches)."""
    if config.uses_openai:
        return OpenAIProvider(config)
    return OfflineProvider(config)


@functools.lru_cache(maxsize=16)
def _cached_provider(config: ProviderConfig) -> Provider:
    return build_provider(config)


def config_from_settings() -> ProviderConfig:
    """Read the provider settings from django.conf.settings."""
    from django.conf import settings

    return ProviderConfig(
        api_key=str(getattr(settings, "OPENAI_API_KEY", "") or ""),
        base_url=str(getattr(settings, "OPENAI_BASE_URL", "") or ""),
        model=str(getattr(settings, "OPENAI_MODEL", "") or "gpt-4o-mini"),
        timeout_seconds=float(getattr(settings, "AI_TIMEOUT_SECONDS", 30) or 30),
        max_retries=int(getattr(settings, "AI_MAX_RETRIES", 2)),
        history_budget_tokens=int(getattr(settings, "AI_HISTORY_BUDGET_TOKENS", 3000)),
        offline_token_delay=float(getattr(settings, "OFFLINE_TOKEN_DELAY", 0.03)),
    )


def get_provider() -> Provider:
    """The provider chosen by settings: OpenAI when a key or base URL is set, else offline."""
    return _cached_provider(config_from_settings())
