"""How much one socket may ask of the server: token buckets checked before any work.

A socket's frames are queued by the server and worked off one by one. Without a limit a
5-second flood of 50,000 heartbeats or resyncs (each a few database round trips) bought
minutes of server work. Now every frame takes a token from the socket's bucket before it
is even parsed, and the actions that cost database work (heartbeat, resync, ...) take one
from their own, smaller bucket too. A frame without a token is dropped at the cost of a
clock read and a counter; the page gets at most one notice per window, and a socket that
goes on past SOCKET_FRAMES_DROPPED_MAX dropped frames in a window is closed with 4429 and
the person's next sockets are held and refused for COOL_DOWN_SECONDS.
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache

CLOSE_TOO_MANY_FRAMES = 4429  # as for too many pages: "too many", the page may reload
WINDOW_SECONDS = 10.0
# After a socket was closed for flooding, the person's new sockets wait this long at the
# handshake and are then closed with 4429, for COOL_DOWN_SECONDS: reconnecting in a loop
# buys neither set-up work (database, groups, resync) nor a fresh budget.
COOL_DOWN_SECONDS = 10
COOL_DOWN_DELAY = 2.0

# Actions with their own budget: (tokens per second, burst). A page sends a resync when its
# socket opens and a heartbeat every 20 s; typing is sent at most every 2 s per room page.
ACTION_RATES: dict[str, tuple[float, float]] = {
    "heartbeat": (0.5, 3),
    "resync": (0.5, 5),
    "typing": (1.0, 5),
    "stop": (1.0, 5),
}


class Verdict(enum.Enum):
    """What to do with a frame."""

    ADMIT = "admit"
    DROP = "drop"  # quietly
    DROP_AND_TELL = "drop and tell"  # drop, and show the page one notice for this window
    CLOSE = "close"  # the socket goes on flooding: close it


@dataclass
class Bucket:
    """A token bucket: `rate` tokens a second, at most `burst` saved up."""

    rate: float
    burst: float
    tokens: float = -1.0
    at: float = 0.0

    def take(self, now: float) -> bool:
        """Take a token if there is one."""
        if self.tokens < 0:
            self.tokens, self.at = self.burst, now
        else:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class FrameBudget:
    """One socket's inbound budget (kept in the consumer: no shared state, no I/O)."""

    frames: Bucket = field(
        default_factory=lambda: Bucket(
            settings.SOCKET_FRAMES_PER_SECOND, settings.SOCKET_FRAMES_BURST
        )
    )
    actions: dict[str, Bucket] = field(default_factory=dict)
    window_start: float = 0.0
    dropped: int = 0
    dropped_total: int = 0
    told_at: float | None = None

    def frame(self, now: float | None = None) -> Verdict:
        """A frame arrived (before it is parsed)."""
        now = time.monotonic() if now is None else now
        return Verdict.ADMIT if self.frames.take(now) else self._drop(now)

    def action(self, name: object, now: float | None = None) -> Verdict:
        """A parsed frame asks for `name`: actions with their own budget take from it too."""
        if not isinstance(name, str) or name not in ACTION_RATES:
            return Verdict.ADMIT
        now = time.monotonic() if now is None else now
        bucket = self.actions.get(name)
        if bucket is None:
            rate, burst = ACTION_RATES[name]
            bucket = self.actions[name] = Bucket(rate, burst)
        return Verdict.ADMIT if bucket.take(now) else self._drop(now)

    def _drop(self, now: float) -> Verdict:
        if now - self.window_start >= WINDOW_SECONDS:
            self.window_start, self.dropped = now, 0
        self.dropped += 1
        self.dropped_total += 1
        if self.dropped > settings.SOCKET_FRAMES_DROPPED_MAX:
            return Verdict.CLOSE
        if self.told_at is None or now - self.told_at >= WINDOW_SECONDS:
            self.told_at = now
            return Verdict.DROP_AND_TELL
        return Verdict.DROP


def _cool_down_key(user_id: int) -> str:
    return f"live:flooded:{user_id}"


async def start_cool_down(user_id: int) -> None:
    """A socket of this person was closed for flooding."""
    await cache.aset(_cool_down_key(user_id), 1, timeout=COOL_DOWN_SECONDS)


async def held_for_cool_down(user_id: int) -> bool:
    """True (after holding the handshake COOL_DOWN_DELAY) while the person is cooling down."""
    if not await cache.aget(_cool_down_key(user_id)):
        return False
    await asyncio.sleep(COOL_DOWN_DELAY)
    return True
