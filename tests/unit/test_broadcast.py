"""Token batching and the token frames it feeds."""

from __future__ import annotations

import asyncio
import time

import pytest

from chat import frames
from chat.coach import broadcast
from chat.coach.broadcast import TokenBatcher

INTERVAL = 0.05


class Sink:
    """Records what the batcher sends, and when."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.at: list[float] = []

    async def __call__(self, text: str) -> None:
        self.sent.append(text)
        self.at.append(time.monotonic())

    async def until(self, count: int, timeout: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.sent) < count:
            assert time.monotonic() < deadline, f"only {self.sent!r} after {timeout}s"
            await asyncio.sleep(0.005)


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.mark.asyncio
async def test_first_token_is_flushed_at_once(sink):
    batcher = TokenBatcher(sink, INTERVAL)

    await batcher.add("Hello")

    assert sink.sent == ["Hello"]
    assert batcher.frames == 1


@pytest.mark.asyncio
async def test_tokens_within_the_interval_are_joined_into_one_frame(sink):
    batcher = TokenBatcher(sink, INTERVAL)
    started = time.monotonic()

    for token in ["Hello", ",", " how", " are", " you"]:
        await batcher.add(token)
    await sink.until(2)

    assert sink.sent == ["Hello", ", how are you"]
    assert batcher.frames == 2
    # The joined frame waited for the interval, not much longer.
    assert INTERVAL * 0.8 <= sink.at[1] - started < INTERVAL + 0.1


@pytest.mark.asyncio
async def test_a_trailing_token_is_flushed_by_the_timer(sink):
    batcher = TokenBatcher(sink, INTERVAL)
    await batcher.add("one")

    await batcher.add(" two")  # no more tokens come after this one
    assert sink.sent == ["one"]
    await sink.until(2)

    assert sink.sent == ["one", " two"]


@pytest.mark.asyncio
async def test_after_a_quiet_spell_the_next_token_goes_out_at_once(sink):
    batcher = TokenBatcher(sink, INTERVAL)
    await batcher.add("one")
    await asyncio.sleep(INTERVAL * 1.5)

    await batcher.add(" two")

    assert sink.sent == ["one", " two"]


@pytest.mark.asyncio
async def test_discard_drops_pending_text_and_the_timer(sink):
    batcher = TokenBatcher(sink, INTERVAL)
    await batcher.add("kept")
    await batcher.add(" dropped")

    batcher.discard()
    await asyncio.sleep(INTERVAL * 2)

    assert sink.sent == ["kept"]
    # Nothing is left behind: a later flush has nothing to send.
    await batcher.flush()
    assert sink.sent == ["kept"]


@pytest.mark.asyncio
async def test_flush_sends_pending_text_before_the_timer(sink):
    batcher = TokenBatcher(sink, INTERVAL)
    await batcher.add("a")
    await batcher.add("b")

    await batcher.flush()

    assert sink.sent == ["a", "b"]


@pytest.mark.asyncio
async def test_empty_deltas_send_nothing(sink):
    batcher = TokenBatcher(sink, INTERVAL)

    await batcher.add("")
    await batcher.flush()

    assert sink.sent == []
    assert batcher.frames == 0


@pytest.mark.asyncio
async def test_a_hundred_fast_tokens_make_few_frames(sink):
    batcher = TokenBatcher(sink, 0.02)

    for i in range(100):
        await batcher.add(f" w{i}")
        await asyncio.sleep(0.001)
    await batcher.flush()

    assert "".join(sink.sent) == "".join(f" w{i}" for i in range(100))
    assert len(sink.sent) < 30


def test_token_frames_append_escaped_text_to_the_reply_body():
    html = frames.tokens("abc", '<img src=x onerror="alert(1)"> & more')

    assert html == (
        '<span hx-swap-oob="beforeend:#message-abc-body">'
        "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; more</span>"
    )


@pytest.mark.parametrize(
    ("configured", "used"), [(0.04, 0.04), (0.01, 0.01), (0.001, 0.01), (0.0, 0.0), (-1.0, 0.0)]
)
def test_the_flush_interval_is_never_below_ten_ms_except_zero(settings, configured, used):
    # 0 stays: a frame per token, for the bench and tests (gaps are repaired by a snapshot).
    settings.STREAM_FLUSH_INTERVAL = configured
    assert broadcast.flush_interval() == used


@pytest.mark.asyncio
async def test_a_slow_models_tokens_each_leave_at_once(sink):
    """50 tokens/s: every token is its own frame, sent as it comes (flush by need)."""
    batcher = TokenBatcher(sink, INTERVAL, idle_gap=0.005)
    delays = []
    for token in ["One", " two", " three", " four"]:
        added = time.monotonic()
        await batcher.add(token)
        delays.append(sink.at[-1] - added if sink.at else None)
        await asyncio.sleep(0.02)

    assert sink.sent == ["One", " two", " three", " four"]
    assert all(d is not None and d < 0.002 for d in delays)


@pytest.mark.asyncio
async def test_a_burst_is_still_batched_with_flush_by_need(sink):
    batcher = TokenBatcher(sink, INTERVAL, idle_gap=0.005)
    for _ in range(100):
        await batcher.add("x")
    await sink.until(2)

    assert len(sink.sent) == 2  # the first at once, the rest in one frame
    assert "".join(sink.sent) == "x" * 100
