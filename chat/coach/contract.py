"""The provider contract: what a coach's reply needs, what it streams, how it fails.

Plain Python on purpose: Django settings are read only in `chat.coach.providers`, so the
streaming code, benchmarks and tests can build providers directly from a `ProviderConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from django.utils.translation import gettext_lazy

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
OUT_OF_CREDIT = gettext_lazy("The AI service account has run out of credit — tell the site staff.")

# Codes where trying the same request again later may well work.
RETRYABLE_CODES = frozenset({"timeout", "rate_limit", "server", "connection"})


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
    category: str = "general"  # the persona's: interview, conversation, medical, general
    # How many replies the latest answer already had (Regenerate asks for another wording).
    variant: int = 0
    # Seconds the latest answer took to say, when it was dictated (words per minute).
    duration_seconds: float | None = None


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


@dataclass(frozen=True)
class ProviderConfig:
    """Settings that define a provider (hashable, so providers can be cached by it)."""

    api_key: str = ""
    base_url: str = ""
    model: str = "gpt-4o-mini"
    timeout_seconds: float = 30.0
    max_retries: int = 2
    http_client: str = "aiohttp"  # or "httpx" (chat/coach/model_http.py)
    history_budget_tokens: int = 3000
    offline_token_delay: float = 0.03

    @property
    def uses_openai(self) -> bool:
        """A key or a base URL selects the OpenAI-compatible provider."""
        return bool(self.api_key or self.base_url)
