"""The browser's side of the live protocol, as a `websockets` client that timestamps frames.

Frames are the app's htmx out-of-band fragments:

* token frame: ``<span hx-swap-oob="beforeend:#message-<id>-body">escaped text</span>``;
* new messages: ``<div hx-swap-oob="beforeend:#messages"><article id="message-<id>" ...>``;
* a finished (or snapshotted) reply: the whole ``<article id="message-<id>" ...
  hx-swap-oob="true">`` with rendered Markdown.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.people import Person

TOKEN_PREFIX = '<span hx-swap-oob="beforeend:#message-'
TOKEN_RE = re.compile(
    r'<span hx-swap-oob="beforeend:#message-([0-9a-f-]{36})-body">(.*?)</span>', re.S
)
ARTICLE_RE = re.compile(r"<article\b([^>]*)>")
ATTR_RE = re.compile(r'([\w-]+)="([^"]*)"')
MARK_RE = re.compile(r"seq=(\d+) t=(\d+)")


def attrs_of(tag_inside: str) -> dict[str, str]:
    return dict(ATTR_RE.findall(tag_inside))


def articles(frame: str) -> list[dict[str, str]]:
    """The attributes of every message article in a frame."""
    return [attrs_of(m.group(1)) for m in ARTICLE_RE.finditer(frame)]


class _BodyText(HTMLParser):
    """Collect the text inside the element with a given id."""

    def __init__(self, element_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.element_id = element_id
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth:
            self.depth += 1
        elif dict(attrs).get("id") == self.element_id:
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.parts.append(data)


def body_text(frame: str, message_id: str) -> str:
    """The visible text of a message's body inside a frame."""
    parser = _BodyText(f"message-{message_id}-body")
    parser.feed(frame)
    parser.close()
    return "".join(parser.parts)


def squash(text: str) -> str:
    """Whitespace-insensitive form (Markdown rendering re-flows whitespace)."""
    return " ".join(text.split())


async def open_socket(
    url: str, person: Person, origin: str, *, timeout: float = 30.0
) -> ClientConnection:
    """Open the conversation socket as a signed-in browser would (cookie + Origin)."""
    return await connect(
        url,
        origin=origin,  # type: ignore[arg-type]
        additional_headers={"Cookie": person.cookie},
        compression=None,
        proxy=None,
        open_timeout=timeout,
        ping_interval=None,
        max_size=None,
        max_queue=256,
        close_timeout=2,
    )


def resync(last_seq: int = 0) -> str:
    """What the page sends on open: what it already has."""
    return json.dumps({"action": "resync", "last_seq": last_seq})


def send(message: str) -> str:
    """What the composer sends."""
    return json.dumps({"action": "send", "message": message})


def marked(seq: int, extra: str = "") -> tuple[str, int]:
    """A message text carrying a sequence number and a send timestamp (monotonic ns)."""
    t = time.monotonic_ns()
    return f"seq={seq} t={t}" + (f" {extra}" if extra else ""), t


@dataclass
class ReplyTrace:
    """What one client saw of one streamed reply."""

    message_id: str
    announced_at: float | None = None
    first_token_at: float | None = None
    fragment_times: list[float] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    token_frames: int = 0
    snapshots: int = 0
    finals: int = 0
    repaired: int = 0
    frames_sent: int = 0
    final_at: float | None = None
    final_status: str = ""
    final_text: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def gaps(self) -> list[float]:
        """Seconds between successive fragments (tokens and the final frame)."""
        times = self.fragment_times
        return [b - a for a, b in zip(times, times[1:], strict=False)]

    def check(
        self, db_status: str, db_content: str, expected: str | None, frames_sent: int | None = None
    ) -> list[str]:
        """Problems: what this client got differs from what the database saved.

        `frames_sent` is the server's own count of token frames (reply metadata): fewer
        received means the channel layer dropped some (group_send past capacity).
        """
        problems = []
        # Frames the channel layer dropped past a channel's capacity are counted, not failed:
        # token events are numbered, so the page drops what follows a gap and waits for a
        # snapshot or the final frame. Whether that made it whole is what the text checks
        # below decide (a page that appended after a hole fails the prefix check).
        self.repaired = max(0, frames_sent - self.token_frames) if frames_sent else 0
        self.frames_sent = frames_sent or 0
        if expected is not None and db_content != expected:
            problems.append(
                f"saved text differs from the model's ({len(db_content)} vs {len(expected)} chars)"
            )
        if db_status != "complete":
            problems.append(f"saved status {db_status}")
        if self.finals != 1:
            problems.append(f"{self.finals} final frames")
        if not db_content.startswith(self.text):
            problems.append("streamed fragments are not a prefix of the saved text (lost/doubled)")
        if self.finals and squash(self.final_text) != squash(db_content):
            problems.append("final frame text differs from the saved text")
        return problems


class Tracker:
    """Feeds frames from one socket into reply traces and room-message marks."""

    def __init__(self, *, keep_marks: bool = True) -> None:
        self.replies: dict[str, ReplyTrace] = {}
        self.announced: asyncio.Queue[str] = asyncio.Queue()
        self.keep_marks = keep_marks
        # seq -> times received; (seq, latency ns) for each delivery
        self.mark_counts: dict[int, int] = {}
        self.marks: list[tuple[int, int]] = []
        self.frames = 0
        self.other = 0
        self.closed: asyncio.Event = asyncio.Event()
        self.close_code: int | None = None

    def trace(self, message_id: str) -> ReplyTrace:
        trace = self.replies.get(message_id)
        if trace is None:
            trace = self.replies[message_id] = ReplyTrace(message_id)
        return trace

    def feed(self, t: float, t_ns: int, frame: str) -> None:
        self.frames += 1
        if frame.startswith(TOKEN_PREFIX):
            for message_id, text in TOKEN_RE.findall(frame):
                trace = self.trace(message_id)
                if trace.first_token_at is None:
                    trace.first_token_at = t
                trace.fragment_times.append(t)
                trace.parts.append(html.unescape(text))
                trace.token_frames += 1
            return
        if "<article" not in frame:
            self.other += 1
            return
        if self.keep_marks and "seq=" in frame:
            for seq, sent_ns in MARK_RE.findall(frame):
                n = int(seq)
                self.mark_counts[n] = self.mark_counts.get(n, 0) + 1
                self.marks.append((n, t_ns - int(sent_ns)))
        for attrs in articles(frame):
            message_id = attrs.get("id", "").removeprefix("message-")
            if attrs.get("data-role") != "assistant" or not message_id:
                continue
            status = attrs.get("data-status", "")
            if attrs.get("hx-swap-oob") == "true":
                trace = self.trace(message_id)
                if status == "streaming":
                    # A snapshot supersedes what was streamed so far.
                    trace.snapshots += 1
                    trace.parts = [body_text(frame, message_id)]
                else:
                    trace.finals += 1
                    trace.final_at = t
                    trace.fragment_times.append(t)
                    trace.final_status = status
                    trace.final_text = body_text(frame, message_id)
                    trace.done.set()
            elif status == "streaming":
                trace = self.trace(message_id)
                if trace.announced_at is None:
                    trace.announced_at = t
                    self.announced.put_nowait(message_id)


async def read_into(ws: ClientConnection, tracker: Tracker) -> None:
    """Read frames until the socket closes, timestamping each on arrival."""
    try:
        async for frame in ws:
            if isinstance(frame, str):
                tracker.feed(time.monotonic(), time.monotonic_ns(), frame)
    except Exception:  # a closed or reset socket ends the reader, never the bench
        pass
    finally:
        tracker.close_code = ws.close_code
        tracker.closed.set()


async def next_reply(tracker: Tracker, timeout: float) -> ReplyTrace:
    """The next reply the server announced on this socket."""
    message_id = await asyncio.wait_for(tracker.announced.get(), timeout)
    return tracker.trace(message_id)


async def gather_limited(coros: list[Any], limit: int) -> list[Any]:
    """Run coroutines with at most `limit` at a time; exceptions are returned, not raised."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)
