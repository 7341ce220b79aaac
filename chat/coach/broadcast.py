"""The streaming broadcast: a growing reply's frames, from the first token to the final one.

Token frames are numbered (`part` 1, 2, …) so a page notices one that never arrived
(group_send drops silently past a channel's capacity) and asks for a snapshot instead of
appending after a hole. A snapshot goes only to the pages that asked (point to point) and
carries the number of the last part it includes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from django.conf import settings

from chat import events, frames
from chat.models import Message
from chat.rendering import open_block_start

# The shortest flush interval honoured: below it, a model at full speed sends a frame per
# token, ~4x the CPU per token, and fills sockets' channels faster than they drain.
MIN_FLUSH_INTERVAL = 0.01


def idle_gap() -> float:
    """STREAM_IDLE_GAP: a delta this long after the previous one is sent at once (0: never)."""
    return max(0.0, float(settings.STREAM_IDLE_GAP))


def flush_interval() -> float:
    """STREAM_FLUSH_INTERVAL, raised to MIN_FLUSH_INTERVAL; 0 stays 0 (a frame per token).

    0 is kept for the bench and tests that want every token as its own frame: token frames
    are numbered, so one that a full channel dropped makes the page ask for a snapshot.
    """
    interval = float(settings.STREAM_FLUSH_INTERVAL)
    return 0.0 if interval <= 0 else max(MIN_FLUSH_INTERVAL, interval)


class TokenBatcher:
    """Flushes deltas by need: at once while the model is slow, batched while it bursts.

    A delta is sent at once when the last flush was at least `interval` ago, or when the
    model is slow (this delta came `idle_gap` or more after the previous one) and the last
    flush was at least `idle_gap` ago: nothing is queuing, so waiting would only add delay
    (a 50 tokens/s model's tokens each leave as they come). While deltas arrive faster than
    that (a burst), they are joined into one frame per `interval`.
    """

    def __init__(
        self, send: Callable[[str], Awaitable[None]], interval: float, idle_gap: float = 0.0
    ) -> None:
        self._send = send
        self._interval = interval
        self._idle_gap = idle_gap
        self._parts: list[str] = []
        self._last_flush = float("-inf")
        self._last_add = float("-inf")
        self._timer: asyncio.Task[None] | None = None
        self.frames = 0

    async def add(self, text: str) -> None:
        """Queue a delta; flush now if nothing is queuing, else with the batch."""
        if not text:
            return
        self._parts.append(text)
        now = time.monotonic()
        gap, self._last_add = now - self._last_add, now
        since_flush = now - self._last_flush
        idle = self._idle_gap > 0 and gap >= self._idle_gap and since_flush >= self._idle_gap
        if since_flush >= self._interval or (idle and self._timer is None):
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_later(self._interval - since_flush))

    async def _flush_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._timer = None
        await self.flush()

    async def flush(self) -> None:
        """Send whatever is queued."""
        if not self._parts:
            return
        text = "".join(self._parts)
        self._parts.clear()
        self._last_flush = time.monotonic()
        self.frames += 1
        await self._send(text)

    @property
    def pending(self) -> bool:
        """True while a timer will flush queued text."""
        return self._timer is not None

    def discard(self) -> None:
        """Drop what is queued and the pending timer (a snapshot or final frame supersedes it)."""
        self._parts.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class ReplyBroadcast:
    """The frames of one growing reply; the text itself is the job's `parts`, held once."""

    def __init__(self, message: Message, parts: list[str]) -> None:
        self.message = message
        self.message_id = str(message.pk)
        self.group = events.conv_group(message.conversation_id)
        self.parts = parts
        self.parts_sent = 0  # token frames sent
        self.snapshots_sent = 0
        self.sent_upto = 0  # how many of `parts` a frame (token frame or snapshot) carried
        self.snapshot_to: set[str] = set()  # channels of pages waiting for a snapshot
        # Streamed Markdown: the first `closed` characters are rendered blocks on the page,
        # `open_text` the growing last block, shown as text until a newer block begins.
        self.closed = 0
        self.open_text = ""
        self.ended = False  # the final frame was sent
        self._lock = asyncio.Lock()  # the timer's flush and the loop's must not swap numbers
        self.batcher = TokenBatcher(self._send_tokens, flush_interval(), idle_gap())

    @property
    def frames_sent(self) -> int:
        """Token frames and snapshots, for the reply's metadata."""
        return self.parts_sent + self.snapshots_sent

    async def add(self, delta: str) -> None:
        """A delta from the model: sent now or with the next batch."""
        await self.batcher.add(delta)

    def want_snapshot(self, channel: str) -> None:
        """A page (its channel) needs the whole text: sent with the next flush, or now."""
        self.snapshot_to.add(channel)
        if not self.batcher.pending:  # nothing queued: don't wait for the next token
            asyncio.get_running_loop().create_task(self._send_tokens(""))

    async def _send_tokens(self, _batch: str) -> None:
        # The text is taken from `parts`, not from the batch: everything not yet sent goes to
        # the group as one token frame, then the pages that asked get a snapshot of exactly
        # that much (a point-to-point snapshot must not take text from the other pages).
        async with self._lock:
            if self.ended:  # the final frame went out: it is every page's whole text
                return
            end = len(self.parts)
            if end > self.sent_upto:
                text = "".join(self.parts[self.sent_upto : end])
                self.sent_upto = end
                self.parts_sent += 1
                await events.publish_safely(
                    self.group,
                    events.frame(
                        self._token_frame(text), stream=self.message_id, part=self.parts_sent
                    ),
                )
            if self.snapshot_to:
                await self._send_snapshots()

    def _token_frame(self, text: str) -> str:
        """Text for the open block, or (when it closed blocks) those blocks rendered."""
        self.open_text += text
        # Only a newline can end a block: most batches skip the Markdown parse entirely.
        split = open_block_start(self.open_text) if "\n" in text else 0
        if not split:
            return frames.tokens(self.message_id, text)
        closed, self.open_text = self.open_text[:split], self.open_text[split:]
        self.closed += split
        return frames.blocks_closed(self.message_id, closed, self.open_text)

    async def _send_snapshots(self) -> None:
        channels, self.snapshot_to = self.snapshot_to, set()
        self.snapshots_sent += 1
        self.message.content = "".join(self.parts[: self.sent_upto])
        event = events.frame(
            frames.message_replaced(self.message, closed=self.closed),
            snapshot=self.message_id,
            part=self.parts_sent,
        )
        # Rendered once, sent only to the pages that asked: the others are not behind.
        for channel in channels:
            try:
                await events.send_to(channel, event)
            except Exception:  # that page is gone or the layer is down: it resyncs later
                continue

    def discard(self) -> None:
        """The stream ended: what is queued is superseded by the final frame."""
        self.batcher.discard()

    async def final(self, message: Message, error: Message | None) -> None:
        """The finished reply, replaced whole, and the notice explaining a failure.

        Taken under the flush lock: a snapshot a page asked for just before the end is
        sent before this frame or not at all (it would show the reply growing again).
        """
        async with self._lock:
            self.ended = True
            self.snapshot_to.clear()
            await events.publish_safely(
                self.group, events.frame(frames.message_replaced(message), final=self.message_id)
            )
        if error is not None:
            await events.publish_safely(
                self.group, events.frame(frames.message_appended(error), seq=error.seq)
            )
