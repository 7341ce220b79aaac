"""A fake OpenAI-compatible chat server for tests and benchmarks (stdlib asyncio only).

It speaks just enough HTTP/1.1 (keep-alive, chunked streaming responses) for the real
``openai`` SDK to drive it end to end:

* ``POST /v1/chat/completions`` — streamed (``text/event-stream`` of ``chat.completion.chunk``
  events, a usage chunk when ``stream_options.include_usage`` is set, then ``data: [DONE]``)
  or a plain ``chat.completion`` JSON; requests marked ``X-Practalk-Purpose: feedback`` get a
  scripted rubric, those marked ``title`` a scripted conversation title (``Script.title``);
* ``GET /v1/models``;
* ``POST /v1/audio/speech`` — audio bytes for the ``input`` text (directives in it apply);
* ``POST /v1/audio/transcriptions`` — multipart upload answered with ``{"text": ...}``
  (``Script.transcript``; 413 past ``Script.max_upload_bytes``, 400 for a non-audio file);
* ``GET /_fake/requests``, ``POST /_fake/script``, ``POST /_fake/reset`` — so tests that run
  the server in another process can read the records and change the behaviour.

Behaviour comes from the server's default :class:`Script` (``server.script = Script(...)``,
changeable at any time) overridden per request by directives in the LAST user message, e.g.
``[[fake:status=429]]``, ``[[fake:drop_after=5]]``, ``[[fake:delay=0.5,tokens=2000]]``,
``[[fake:stall]]``, ``[[fake:error_after=3]]``, ``[[fake:markdown]]``, ``[[fake:echo]]``.

Three ways to run it::

    server = FakeOpenAIServer(Script(tokens=5))
    base_url = server.start_in_thread()      # own thread + loop; server.stop()
    base_url = await server.start()          # inside the running loop; await server.close()
    python -m tests.fakes.fake_openai --port 0 --tokens 2000 --delay 0.02   # prints base URL

All times in records are ``time.monotonic()`` seconds (one system-wide clock on Linux, so
they compare across processes too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import dataclasses
import io
import json
import re
import signal
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_TITLE",
    "GOOD_RUBRIC",
    "HOSTILE_MARKDOWN",
    "RUBRIC_MODES",
    "FakeOpenAIServer",
    "RequestRecord",
    "Script",
    "parse_directives",
    "reply_tokens",
    "split_tokens",
]

_SENTENCE = (
    "Thanks for sharing that answer. Could you tell me about a time you solved a hard "
    "problem at work, what you did yourself, and what the result was for the team?"
)
_WORDS = _SENTENCE.split()

HOSTILE_MARKDOWN = (
    "Here is **bold** advice with a list:\n\n"
    "- first point\n- second point\n\n"
    "<img src=x onerror=alert(1)>\n\n"
    "[click me](javascript:alert(1))\n\n"
    '<div id="messages" hx-swap-oob="true">pwned</div>\n\n'
    "<script>alert(2)</script>\n\n"
    "```python\nprint('done')\n```"
)

DEFAULT_TRANSCRIPT = (
    "In my last role I led the move to a new billing system and we cut failed payments by a third"
)
# The extensions OpenAI's transcription endpoint accepts.
AUDIO_EXTENSIONS = (
    ".flac",
    ".m4a",
    ".mp3",
    ".mp4",
    ".mpeg",
    ".mpga",
    ".oga",
    ".ogg",
    ".wav",
    ".webm",
)
# What /v1/audio/speech answers: an ID3-tagged body, longer for longer input.
SPEECH_HEADER = b"ID3\x04\x00\x00\x00\x00\x00\x00"


def speech_bytes(text: str) -> bytes:
    """The fake's deterministic "audio" for a text (an ID3 header, then bytes of the text)."""
    body = (text.encode() * 8)[: max(256, len(text) * 8)]
    return SPEECH_HEADER + body


def speech_wav(text: str, rate: int = 8000) -> bytes:
    """A playable WAV of silence, 20 ms per character of `text` (at least half a second)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(rate)
        wav.writeframes(b"\x80" * max(rate // 2, len(text) * rate // 50))
    return out.getvalue()


def parse_multipart(content_type: str, raw: bytes) -> dict[str, Any]:
    """A multipart/form-data body: its text fields, and each file's name, type and size."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        return {}
    boundary = b"--" + match.group(1).encode()
    fields: dict[str, Any] = {}
    files: dict[str, Any] = {}
    for part in raw.split(boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, _, value = part.strip(b"\r\n").partition(b"\r\n\r\n")
        headers = head.decode("latin-1").lower()
        name = re.search(r'name="([^"]*)"', headers)
        if not name:
            continue
        filename = re.search(r'filename="([^"]*)"', head.decode("utf-8", "replace"))
        if filename:
            kind = re.search(r"content-type:\s*([^\r\n]+)", headers)
            files[name.group(1)] = {
                "filename": filename.group(1),
                "content_type": kind.group(1).strip() if kind else "",
                "size": len(value),
                "head": value[:16].hex(),
            }
        else:
            fields[name.group(1)] = value.decode("utf-8", "replace")
    return {"fields": fields, "files": files}


GOOD_RUBRIC: dict[str, Any] = {
    "structure": {"score": 4, "reason": "Situation, action and result are in order."},
    "relevance": {"score": 5, "reason": "It answers the question asked."},
    "specificity": {"score": 3, "reason": "One occasion, but few details."},
    "clarity": {"score": 4, "reason": "Short sentences, easy to follow."},
    "language": {"score": 4, "reason": "Correct English with a few repetitions."},
    "strength": "You named what you did yourself.",
    "improvement": "Put a number on the result.",
    "rewrite": "I cut the release time from two days to two hours.",
    "corrections": [
        {"original": "I have saw", "corrected": "I have seen", "explanation": "Past participle."}
    ],
}
RUBRIC_MODES = ("good", "broken", "missing", "wrong_types", "out_of_range", "refusal", "fenced")
FEEDBACK_HEADER = "x-practalk-purpose"
PURPOSE_HEADER = FEEDBACK_HEADER  # "feedback" (the rubric) or "title" (a conversation's name)
# What a title request (X-Practalk-Purpose: title) gets by default.
DEFAULT_TITLE = "Solving a hard problem at work"


def rubric_content(mode: str) -> tuple[str | None, str | None]:
    """(content, refusal) of a scripted feedback answer in one of RUBRIC_MODES."""
    good = json.dumps(GOOD_RUBRIC)
    if mode == "broken":
        return good[: len(good) // 2], None
    if mode == "missing":
        return json.dumps(
            {k: v for k, v in GOOD_RUBRIC.items() if k not in ("clarity", "rewrite")}
        ), None
    if mode == "wrong_types":
        return json.dumps({**GOOD_RUBRIC, "structure": {"score": "four", "reason": 7}}), None
    if mode == "out_of_range":
        return json.dumps({**GOOD_RUBRIC, "relevance": {"score": 9, "reason": "Too high."}}), None
    if mode == "refusal":
        return None, "I can't help with that."
    if mode == "fenced":
        return f"Here is the feedback:\n```json\n{good}\n```", None
    return good, None


_DIRECTIVE_RE = re.compile(r"\[\[fake:([^\]]*)\]\]")
_MAX_HEADER_BYTES = 64 * 1024
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Script:
    """How the fake answers a chat completion request."""

    tokens: int = 20  # length of the default reply
    delay: float = 0.0  # seconds between tokens (0 = as fast as possible, still yielding)
    first_token_delay: float = 0.0  # extra wait before the first token (time to first token)
    status: int | None = None  # fail with this HTTP status and an OpenAI-style error body
    fail_times: int | None = None  # with status: fail only the first N requests, then answer
    retry_after_ms: int | None = 50  # retry-after-ms on 429/5xx so SDK retries stay quick
    stall: bool | str = False  # True/"body": headers then silence; "headers": silence at once
    stall_seconds: float = 3600.0  # how long a stall lasts before the socket is closed
    drop_after: int | None = None  # close the socket after K tokens, without [DONE]
    error_after: int | None = None  # after K tokens, an error event ends the stream (no [DONE])
    markdown: bool = False  # reply with HOSTILE_MARKDOWN
    echo: bool = False  # reply with the last user message (directives removed)
    text: str | None = None  # reply with this exact text (split into word tokens)
    model: str | None = None  # model name reported in chunks (default: the requested model)
    finish_reason: str | None = "stop"  # None: end the stream cleanly without saying why
    transcript: str = DEFAULT_TRANSCRIPT  # what /v1/audio/transcriptions "heard"
    max_upload_bytes: int = 25 * 1024 * 1024  # larger uploads get OpenAI's 413
    # Feedback requests (structured output): what the scripted JSON looks like — one of
    # RUBRIC_MODES — for the first `rubric_bad_times` of them per answer (None: all).
    rubric: str = "good"
    rubric_bad_times: int | None = None
    structured: bool = True  # False: refuse `response_format` with a 400, like older servers
    # Title requests (X-Practalk-Purpose: title), non-streamed: the answer's text as sent
    # (quotes, Markdown or "" included), or a failure with `title_status`, after `title_delay`.
    # The reply's own status/stall/fail_times do not apply to them.
    title: str = DEFAULT_TITLE
    title_status: int | None = None
    title_delay: float = 0.0


@dataclass
class RequestRecord:
    """What the fake saw and did for one HTTP request."""

    id: int
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON body, or None
    arrived_at: float
    behaviour: Script | None = None  # effective script (default + directives)
    directives: dict[str, str] = field(default_factory=dict)
    stream: bool = False
    status: int = 200
    first_token_at: float | None = None
    finished_at: float | None = None
    tokens_sent: int = 0
    token_times: list[float] = field(default_factory=list)  # monotonic, when each was written
    completed: bool = False  # whole response written ([DONE] for streams)
    client_disconnected: bool = False
    disconnected_at: float | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's ``messages`` list (empty when absent)."""
        if isinstance(self.body, dict) and isinstance(self.body.get("messages"), list):
            return self.body["messages"]
        return []

    @property
    def feedback(self) -> bool:
        """A request for an answer's feedback (rubric), not for a coach's reply."""
        return self.headers.get(FEEDBACK_HEADER) == "feedback" or (
            isinstance(self.body, dict) and "response_format" in self.body
        )

    @property
    def title(self) -> bool:
        """A request for a conversation's title, not for a coach's reply."""
        return self.headers.get(PURPOSE_HEADER) == "title"

    @property
    def last_user_message(self) -> str:
        """Text of the last user message, or ""."""
        return _last_user_text(self.body)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict of this record."""
        data = dataclasses.asdict(self)
        return data


def split_tokens(text: str) -> list[str]:
    """Split text into word tokens that keep their leading whitespace ("".join gives text)."""
    tokens = re.findall(r"\s*\S+", text)
    tail = text[len("".join(tokens)) :]
    if tail:  # trailing whitespace has no word to lean on
        tokens.append(tail)
    return tokens


def reply_tokens(n: int) -> list[str]:
    """The deterministic default reply of ``n`` tokens (first without a leading space)."""
    return [(" " if i else "") + _WORDS[i % len(_WORDS)] for i in range(n)]


def _convert(value: str) -> Any:
    if value.lower() in ("", "true", "yes", "on"):
        return True
    if value.lower() in ("false", "no", "off"):
        return False
    if value.lower() in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def parse_directives(text: str) -> dict[str, str]:
    """Read ``[[fake:key=value,...]]`` directives from text (a bare key means true)."""
    found: dict[str, str] = {}
    for group in _DIRECTIVE_RE.findall(text):
        for item in group.split(","):
            item = item.strip()
            if not item:
                continue
            key, _, value = item.partition("=")
            found[key.strip().replace("-", "_")] = value.strip()
    return found


def _apply_directives(script: Script, directives: dict[str, str]) -> Script:
    names = {f.name for f in dataclasses.fields(Script)}
    changes = {key: _convert(value) for key, value in directives.items() if key in names}
    return dataclasses.replace(script, **changes) if changes else script


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _last_user_text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def _error_body(status: int, model: str) -> dict[str, Any]:
    kinds: dict[int, tuple[str, str, str | None]] = {
        400: ("Invalid request.", "invalid_request_error", None),
        401: (
            "Incorrect API key provided: sk-fake. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        ),
        403: ("You are not allowed to use this model.", "invalid_request_error", None),
        404: (f"The model `{model}` does not exist.", "invalid_request_error", "model_not_found"),
        429: (
            f"Rate limit reached for {model}. Please try again in 20ms.",
            "requests",
            "rate_limit_exceeded",
        ),
        503: (
            "The engine is currently overloaded, please try again later.",
            "server_error",
            None,
        ),
    }
    message, kind, code = kinds.get(
        status,
        (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
    )
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class _Conn:
    """One client connection: a byte buffer over the stream reader, plus the writer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        self.eof = False
        self.dropped = False  # we cut the connection on purpose (not the client leaving)
        self.gone = asyncio.Event()  # set once the client has closed or reset the connection
        self.gone_at: float | None = None

    def mark_gone(self) -> None:
        """Note the moment the client went away (first sighting wins)."""
        if self.gone_at is None:
            self.gone_at = time.monotonic()
        self.gone.set()

    async def read_more(self) -> bool:
        """Read some bytes into the buffer; False once the peer has gone."""
        if self.eof:
            return False
        try:
            data = await self.reader.read(65536)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            self.mark_gone()
            return False
        self.buf += data
        return True

    async def read_request(self) -> tuple[str, str, dict[str, str], bytes] | None:
        """Parse one HTTP/1.1 request; None on a clean EOF between requests."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > _MAX_HEADER_BYTES or not await self.read_more():
                return None
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        self.buf = bytearray(rest)
        while len(self.buf) < length:
            if not await self.read_more():
                return None
        body = bytes(self.buf[:length])
        del self.buf[:length]
        return method, target.split("?", 1)[0], headers, body

    @property
    def closing(self) -> bool:
        return self.eof or self.writer.transport.is_closing()


class FakeOpenAIServer:
    """A scriptable OpenAI-compatible streaming server that records every request."""

    def __init__(
        self, script: Script | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.host = host
        self.port = port
        self._script = script or Script()
        self._script_generation = 0
        self._fail_counts: dict[tuple[Any, ...], int] = {}
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0  # TCP connections accepted (keep-alive reuse shows here)

    # ----- configuration and records (safe from any thread) -----

    @property
    def script(self) -> Script:
        """The default behaviour; assign a new Script to change it."""
        with self._lock:
            return self._script

    @script.setter
    def script(self, value: Script) -> None:
        with self._lock:
            self._script = value
            # A new script starts a fresh fail_times count.
            self._script_generation += 1

    @property
    def base_url(self) -> str:
        """``http://host:port/v1``, for ``AsyncOpenAI(base_url=...)``."""
        if not self.port:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[RequestRecord]:
        """Snapshot (copies) of every request recorded so far, oldest first."""
        with self._lock:
            return [copy.copy(record) for record in self._records]

    @property
    def completions(self) -> list[RequestRecord]:
        """Snapshot of the chat completion requests for replies (feedback and titles apart)."""
        return [
            r
            for r in self.requests
            if r.path.endswith("/chat/completions") and not r.feedback and not r.title
        ]

    @property
    def feedback_requests(self) -> list[RequestRecord]:
        """Snapshot of the answer-feedback requests (structured output), oldest first."""
        return [r for r in self.requests if r.path.endswith("/chat/completions") and r.feedback]

    @property
    def title_requests(self) -> list[RequestRecord]:
        """Snapshot of the conversation-title requests, oldest first."""
        return [r for r in self.requests if r.path.endswith("/chat/completions") and r.title]

    @property
    def last(self) -> RequestRecord | None:
        """The latest chat completion request for a reply (not for feedback), or None."""
        completions = self.completions
        return completions[-1] if completions else None

    def clear(self) -> None:
        """Forget recorded requests and fail counts."""
        with self._lock:
            self._records.clear()
            self._fail_counts.clear()

    def wait_until(
        self, predicate: Callable[[list[RequestRecord]], bool], timeout: float = 5.0
    ) -> bool:
        """Block (thread mode) until predicate(records) holds; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate([copy.copy(r) for r in self._records]):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.05))
        return True

    async def await_until(
        self, predicate: Callable[[list[RequestRecord]], bool], timeout: float = 5.0
    ) -> bool:
        """Wait without blocking the loop until predicate(records) holds; False on timeout."""
        deadline = time.monotonic() + timeout
        while not predicate(self.requests):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    def _update(self, record: RequestRecord, **changes: Any) -> None:
        with self._changed:
            for name, value in changes.items():
                setattr(record, name, value)
            self._changed.notify_all()

    def _mark_disconnected(self, record: RequestRecord, at: float | None) -> None:
        with self._changed:
            if not record.client_disconnected and not record.completed:
                record.client_disconnected = True
                record.disconnected_at = at or time.monotonic()
            self._changed.notify_all()

    # ----- lifecycle -----

    async def start(self) -> str:
        """Start serving in the running loop; returns the base URL."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.base_url

    async def close(self) -> None:
        """Stop serving and drop every open connection (call in the server's loop)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def start_in_thread(self) -> str:
        """Start serving from a daemon thread with its own loop; returns the base URL."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait()
        return asyncio.run_coroutine_threadsafe(self.start(), loop).result(10)

    def stop(self) -> None:
        """Stop a server started with start_in_thread()."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        self.start_in_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeOpenAIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----- HTTP -----

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        self.connections += 1
        conn = _Conn(reader, writer)
        try:
            while True:
                request = await conn.read_request()
                if request is None:
                    break
                if not await self._dispatch(conn, *request):
                    break
        except (ConnectionError, OSError, ValueError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _record(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> RequestRecord:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._changed:
            record = RequestRecord(
                id=len(self._records) + 1,
                method=method,
                path=path,
                headers=headers,
                body=body,
                arrived_at=time.monotonic(),
            )
            self._records.append(record)
            self._changed.notify_all()
        return record

    async def _dispatch(
        self, conn: _Conn, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> bool:
        """Answer one request; returns whether the connection may be reused."""
        record = self._record(method, path, headers, raw)
        try:
            return await self._route(conn, record, method, path, raw)
        finally:
            # A response cut short by the client (not by a scripted drop) is a disconnect.
            if not record.completed and not conn.dropped and (conn.gone.is_set() or conn.closing):
                self._mark_disconnected(record, conn.gone_at)

    async def _route(
        self, conn: _Conn, record: RequestRecord, method: str, path: str, raw: bytes = b""
    ) -> bool:
        if path.endswith("/chat/completions") and method == "POST":
            return await self._chat(conn, record)
        if path.endswith("/audio/speech") and method == "POST":
            return await self._speech(conn, record)
        if path.endswith("/audio/transcriptions") and method == "POST":
            return await self._transcription(conn, record, raw)
        if path.endswith("/models") and method == "GET":
            script = self.script
            model = script.model or "fake-model"
            if script.status and script.status >= 400 and script.fail_times is None:
                # A server scripted to fail fails health checks too.
                return await self._json(
                    conn, record, script.status, _error_body(script.status, model)
                )
            data = {
                "object": "list",
                "data": [{"id": model, "object": "model", "created": 0, "owned_by": "fake"}],
            }
            return await self._json(conn, record, 200, data)
        if path == "/_fake/requests" and method == "GET":
            return await self._json(conn, record, 200, [r.to_json() for r in self.requests])
        if path == "/_fake/script" and method == "POST":
            try:
                self.script = Script(**(record.body or {}))
            except TypeError as exc:
                return await self._json(conn, record, 400, {"error": {"message": str(exc)}})
            return await self._json(conn, record, 200, dataclasses.asdict(self.script))
        if path == "/_fake/reset" and method == "POST":
            self.clear()
            return await self._json(conn, record, 200, {"ok": True})
        return await self._json(conn, record, 404, _error_body(404, path))

    async def _fail(self, conn: _Conn, record: RequestRecord, script: Script, model: str) -> bool:
        headers = {"x-request-id": f"req_{record.id}"}
        assert script.status is not None
        if script.retry_after_ms and (script.status == 429 or script.status >= 500):
            headers["retry-after-ms"] = str(script.retry_after_ms)
        return await self._json(
            conn, record, script.status, _error_body(script.status, model), headers
        )

    async def _speech(self, conn: _Conn, record: RequestRecord) -> bool:
        body = record.body if isinstance(record.body, dict) else {}
        text = body.get("input")
        script, fail = self._behaviour(record, text if isinstance(text, str) else "")
        model = str(body.get("model") or "fake-tts")
        if fail:
            return await self._fail(conn, record, script, model)
        if not isinstance(text, str) or not text or not body.get("voice"):
            return await self._json(conn, record, 400, _error_body(400, model))
        if script.delay:
            await self._pause(script.delay, conn.gone)
        # WAV is real audio a browser can play (silence, longer for longer input).
        wants_wav = body.get("response_format") == "wav"
        audio = speech_wav(text) if wants_wav else speech_bytes(text)
        kind = {"wav": "audio/wav", "opus": "audio/ogg", "flac": "audio/flac"}.get(
            str(body.get("response_format") or "mp3"), "audio/mpeg"
        )
        ok = await self._write(conn, self._head(200, kind, len(audio)) + audio)
        self._update(record, status=200, completed=ok, finished_at=time.monotonic())
        return ok

    async def _transcription(self, conn: _Conn, record: RequestRecord, raw: bytes) -> bool:
        form = parse_multipart(record.headers.get("content-type", ""), raw)
        self._update(record, body=form)
        script, fail = self._behaviour(record, "")
        model = str(form.get("fields", {}).get("model") or "fake-whisper")
        if fail:
            return await self._fail(conn, record, script, model)
        upload = form.get("files", {}).get("file")
        if not upload or not upload["size"]:
            return await self._json(conn, record, 400, _error_body(400, model))
        if upload["size"] > script.max_upload_bytes:
            error = {
                "error": {
                    "message": f"Maximum content size limit ({script.max_upload_bytes}) exceeded.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            }
            return await self._json(conn, record, 413, error)
        if not upload["filename"].lower().endswith(AUDIO_EXTENSIONS):
            error = {
                "error": {
                    "message": "Invalid file format. Supported formats: "
                    + ", ".join(ext.lstrip(".") for ext in AUDIO_EXTENSIONS),
                    "type": "invalid_request_error",
                    "param": "file",
                    "code": None,
                }
            }
            return await self._json(conn, record, 400, error)
        if script.delay:
            await self._pause(script.delay, conn.gone)
        return await self._json(conn, record, 200, {"text": script.transcript})

    async def _write(self, conn: _Conn, data: bytes) -> bool:
        """Write and flush; False when the client has gone."""
        if conn.closing:
            conn.mark_gone()
            return False
        try:
            conn.writer.write(data)
            await conn.writer.drain()
        except (ConnectionError, OSError):
            conn.mark_gone()
            return False
        return True

    async def _json(
        self,
        conn: _Conn,
        record: RequestRecord,
        status: int,
        data: Any,
        extra_headers: dict[str, str] | None = None,
    ) -> bool:
        payload = json.dumps(data).encode()
        head = self._head(status, "application/json", len(payload), extra_headers)
        ok = await self._write(conn, head + payload)
        self._update(record, status=status, completed=ok, finished_at=time.monotonic())
        return ok

    @staticmethod
    def _head(
        status: int,
        content_type: str,
        length: int | None,
        extra_headers: dict[str, str] | None = None,
    ) -> bytes:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            f"content-type: {content_type}",
            "connection: keep-alive",
        ]
        if length is None:
            lines += ["transfer-encoding: chunked", "cache-control: no-cache"]
        else:
            lines.append(f"content-length: {length}")
        lines += [f"{name}: {value}" for name, value in (extra_headers or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _behaviour(self, record: RequestRecord, text: str | None = None) -> tuple[Script, bool]:
        """Effective script for a request, and whether it should fail with its status."""
        text = record.last_user_message if text is None else text
        directives = parse_directives(text)
        with self._lock:
            base, generation = self._script, self._script_generation
        script = _apply_directives(base, directives)
        self._update(record, behaviour=script, directives=directives)
        if not script.status or script.status < 400:
            return script, False
        if script.fail_times is None:
            return script, True
        # Count failures per script, or per message when directives chose the failure,
        # so "fail twice then answer" also works for messages typed in end-to-end tests.
        key: tuple[Any, ...] = (
            ("message", text)
            if {"status", "fail_times"} & directives.keys()
            else ("script", generation)
        )
        with self._lock:
            count = self._fail_counts.get(key, 0)
            if count < script.fail_times:
                self._fail_counts[key] = count + 1
                return script, True
        return script, False

    def _reply(self, script: Script, record: RequestRecord) -> list[str]:
        if script.text is not None:
            return split_tokens(script.text)
        if script.markdown:
            return split_tokens(HOSTILE_MARKDOWN)
        if script.echo:
            return split_tokens(_DIRECTIVE_RE.sub("", record.last_user_message).strip())
        return reply_tokens(max(0, script.tokens))

    @staticmethod
    async def _pause(seconds: float, gone: asyncio.Event) -> None:
        """Sleep, but wake as soon as the client goes (server close cancels us anyway)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await gone.wait()

    async def _chat(self, conn: _Conn, record: RequestRecord) -> bool:
        body = record.body if isinstance(record.body, dict) else {}
        if record.title:
            return await self._title(conn, record, body)
        script, fail = self._behaviour(record)
        model = script.model or str(body.get("model") or "fake-model")
        stream = bool(body.get("stream"))
        self._update(record, stream=stream)
        if not isinstance(record.body, dict) or not isinstance(body.get("messages"), list):
            return await self._json(conn, record, 400, _error_body(400, model))

        # Watch the socket while we answer: EOF/reset means the client went away.
        gone = conn.gone

        async def watch() -> None:
            while await conn.read_more():
                pass  # pipelined bytes stay in conn.buf for the next request

        watcher = asyncio.create_task(watch())
        try:
            if fail:
                headers = {"x-request-id": f"req_{record.id}"}
                if script.retry_after_ms and (script.status == 429 or script.status >= 500):
                    headers["retry-after-ms"] = str(script.retry_after_ms)
                assert script.status is not None
                return await self._json(
                    conn, record, script.status, _error_body(script.status, model), headers
                )
            if script.stall:
                if script.stall != "headers":
                    # Headers promise a body that never comes.
                    head = (
                        self._head(200, "text/event-stream; charset=utf-8", None)
                        if stream
                        else self._head(200, "application/json", 1024)
                    )
                    await self._write(conn, head)
                await self._pause(script.stall_seconds, gone)
                self._update(record, finished_at=time.monotonic())
                return False
            if record.feedback:
                return await self._feedback(conn, record, script, model, body)
            tokens = self._reply(script, record)
            if stream:
                return await self._stream(conn, record, script, model, tokens, gone)
            return await self._complete(conn, record, script, model, tokens, gone)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _feedback(
        self, conn: _Conn, record: RequestRecord, script: Script, model: str, body: dict[str, Any]
    ) -> bool:
        """A scripted JSON answer to a feedback request (or a 400 for response_format)."""
        if "response_format" in body and not script.structured:
            return await self._json(conn, record, 400, _error_body(400, model))
        mode = script.rubric
        if script.rubric_bad_times is not None:
            key = ("rubric", record.last_user_message)
            with self._lock:
                count = self._fail_counts.get(key, 0)
                self._fail_counts[key] = count + 1
            if count >= script.rubric_bad_times:
                mode = "good"
        await self._pause(script.first_token_delay, conn.gone)
        content, refusal = rubric_content(mode)
        data = {
            "id": f"chatcmpl-fake{record.id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": refusal},
                    "finish_reason": "stop",
                }
            ],
            "usage": self._usage(record, 60),
        }
        self._update(record, first_token_at=time.monotonic(), tokens_sent=1)
        return await self._json(conn, record, 200, data)

    async def _title(self, conn: _Conn, record: RequestRecord, body: dict[str, Any]) -> bool:
        """A scripted title (or `title_status`), after `title_delay`; not counted as a reply."""
        directives = parse_directives(record.last_user_message)
        script = _apply_directives(self.script, directives)
        self._update(record, behaviour=script, directives=directives, stream=False)
        model = script.model or str(body.get("model") or "fake-model")
        if body.get("stream") or not isinstance(body.get("messages"), list):
            return await self._json(conn, record, 400, _error_body(400, model))

        async def watch() -> None:  # EOF or reset: the client gave up (a timeout)
            while await conn.read_more():
                pass

        watcher = asyncio.create_task(watch())
        try:
            await self._pause(script.title_delay, conn.gone)
            if conn.gone.is_set():
                self._update(record, finished_at=time.monotonic())
                return False
            if script.title_status and script.title_status >= 400:
                status = script.title_status
                return await self._json(conn, record, status, _error_body(status, model))
            data = {
                "id": f"chatcmpl-fake{record.id}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": script.title},
                        "finish_reason": "stop",
                    }
                ],
                "usage": self._usage(record, len(split_tokens(script.title))),
            }
            self._update(record, first_token_at=time.monotonic(), tokens_sent=1)
            return await self._json(conn, record, 200, data)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    @staticmethod
    def _usage(record: RequestRecord, completion_tokens: int) -> dict[str, int]:
        chars = sum(len(_content_text(m.get("content"))) for m in record.messages)
        prompt = max(1, chars // 4)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
        }

    async def _complete(
        self,
        conn: _Conn,
        record: RequestRecord,
        script: Script,
        model: str,
        tokens: list[str],
        gone: asyncio.Event,
    ) -> bool:
        await self._pause(script.first_token_delay + script.delay * len(tokens), gone)
        if gone.is_set():
            self._update(record, finished_at=time.monotonic())
            return False
        data = {
            "id": f"chatcmpl-fake{record.id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(tokens)},
                    "finish_reason": script.finish_reason,
                }
            ],
            "usage": self._usage(record, len(tokens)),
        }
        if script.drop_after is not None:
            payload = json.dumps(data).encode()
            head = self._head(200, "application/json", len(payload))
            await self._write(conn, head + payload[: len(payload) // 2])
            conn.dropped = True
            self._update(record, finished_at=time.monotonic())
            return False
        self._update(record, first_token_at=time.monotonic(), tokens_sent=len(tokens))
        return await self._json(conn, record, 200, data)

    async def _stream(
        self,
        conn: _Conn,
        record: RequestRecord,
        script: Script,
        model: str,
        tokens: list[str],
        gone: asyncio.Event,
    ) -> bool:
        body = record.body
        created = int(time.time())
        chunk_id = f"chatcmpl-fake{record.id}"

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            data = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
                **extra,
            }
            line = f"data: {json.dumps(data)}\n\n".encode()
            return f"{len(line):x}\r\n".encode() + line + b"\r\n"

        def finish(ok: bool) -> bool:
            self._update(record, finished_at=time.monotonic(), completed=ok)
            return ok

        head = self._head(200, "text/event-stream; charset=utf-8", None, {"x-request-id": chunk_id})
        role = event(
            [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        )
        if not await self._write(conn, head + role):
            return finish(False)
        if script.first_token_delay:
            await self._pause(script.first_token_delay, gone)
        for index, token in enumerate(tokens):
            if script.drop_after is not None and index >= script.drop_after:
                break
            if script.error_after is not None and index >= script.error_after:
                break
            if index and script.delay:
                await self._pause(script.delay, gone)
            if gone.is_set() or conn.closing:
                return finish(False)
            piece = event([{"index": 0, "delta": {"content": token}, "finish_reason": None}])
            if not await self._write(conn, piece):
                return finish(False)
            written = time.monotonic()
            if index == 0:
                self._update(record, first_token_at=written)
            self._update(record, tokens_sent=index + 1, token_times=[*record.token_times, written])
            if not script.delay:
                await asyncio.sleep(0)  # let the loop notice a client that went away
        if script.drop_after is not None:
            # Cut the connection: no finish_reason, no terminating chunk, no [DONE].
            conn.dropped = True
            conn.writer.close()
            return finish(False)
        if script.error_after is not None and script.error_after < len(tokens):
            # What OpenAI sends when generation fails after it started: an error object as
            # the stream's last event, then the end of the body.
            error = f"data: {json.dumps(_error_body(500, model))}\n\n".encode()
            tail = f"{len(error):x}\r\n".encode() + error + b"\r\n0\r\n\r\n"
            conn.dropped = True  # the connection ends on purpose, not because the client left
            await self._write(conn, tail)
            return finish(False)
        if not tokens:
            self._update(record, first_token_at=time.monotonic())
        closing = b""
        if script.finish_reason is not None:
            closing += event([{"index": 0, "delta": {}, "finish_reason": script.finish_reason}])
        options = body.get("stream_options") if isinstance(body, dict) else None
        if isinstance(options, dict) and options.get("include_usage"):
            closing += event([], usage=self._usage(record, len(tokens)))
        done = b"data: [DONE]\n\n"
        closing += f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n"
        return finish(await self._write(conn, closing))


def main(argv: list[str] | None = None) -> None:
    """Run the fake server as a process; the first stdout line is its base URL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=Script.tokens)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between tokens")
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--status", type=int, default=None)
    parser.add_argument("--fail-times", type=int, default=None)
    parser.add_argument("--drop-after", type=int, default=None)
    parser.add_argument("--stall", action="store_true")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--model", default=None)
    args = parser.parse_args(argv)
    script = Script(
        tokens=args.tokens,
        delay=args.delay,
        first_token_delay=args.first_token_delay,
        status=args.status,
        fail_times=args.fail_times,
        drop_after=args.drop_after,
        stall=args.stall,
        markdown=args.markdown,
        model=args.model,
    )

    async def serve() -> None:
        server = FakeOpenAIServer(script, host=args.host, port=args.port)
        print(await server.start(), flush=True)
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        await done.wait()
        await server.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
