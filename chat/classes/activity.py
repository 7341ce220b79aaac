"""The activity log of live sessions, written through one service: `record`.

Nothing on the live path waits for the ledger. With ACTIVITY_REDIS_URL (REDIS_URL by
default) an event is appended to a Redis Stream once the write it follows commits;
`manage.py run_activity_consumer` reads it in a consumer group and stores batches.
Without Redis, or while Redis is down, events go to a small in-process buffer that a
background thread stores every ACTIVITY_FLUSH_SECONDS or ACTIVITY_BATCH events. Every
event carries its own id and the table's unique key on it makes storing idempotent, so
an entry stored twice (a consumer killed between commit and ack) is one row.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from chat.models import ActivityEvent, ClassSession

logger = logging.getLogger(__name__)

STREAM_FIELD = "e"
REDIS_RETRY_AFTER = 5.0  # seconds on the direct path after Redis failed

JOIN, LEAVE, RECONNECT = "join", "leave", "reconnect"
START, STEP, PAUSE, RESUME, END = "start", "step", "pause", "resume", "end"
ANSWER, HAND_RAISED, HAND_LOWERED, HAND_RESOLVED = (
    "answer",
    "hand_raised",
    "hand_lowered",
    "hand_resolved",
)
KINDS = (
    JOIN, LEAVE, RECONNECT, START, STEP, PAUSE, RESUME, END,
    ANSWER, HAND_RAISED, HAND_LOWERED, HAND_RESOLVED,
)  # fmt: skip


def record(
    *,
    session_id: Any,
    kind: str,
    user_id: int | None = None,
    step: int = 0,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> str:
    """Log one event (after the current transaction commits); returns its id."""
    event = {
        "event_id": str(uuid.uuid4()),
        "session": str(session_id),
        "user": user_id,
        "kind": kind,
        "step": step,
        "data": data or {},
        "at": (at or timezone.now()).isoformat(),
    }
    transaction.on_commit(lambda: _emit(event))
    return str(event["event_id"])


# --- the two paths --------------------------------------------------------------------------


_redis_down_until = 0.0
_client: Any = None


def redis_url() -> str:
    """Where the stream lives ("" for the direct path)."""
    return str(getattr(settings, "ACTIVITY_REDIS_URL", "") or "")


def stream_name() -> str:
    """The Redis Stream the events go to."""
    return str(getattr(settings, "ACTIVITY_STREAM", "practalk:activity"))


def client() -> Any:
    """This process's Redis client for the stream (short timeouts: never stall a page)."""
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(
            redis_url(), socket_timeout=0.5, socket_connect_timeout=0.5, decode_responses=True
        )
    return _client


def reset_client() -> None:
    """Forget the client and any Redis failure (settings changed: tests)."""
    global _client, _redis_down_until
    _client = None
    _redis_down_until = 0.0


def path() -> str:
    """Which path events take now: "redis stream" or "direct"."""
    if redis_url() and time.monotonic() >= _redis_down_until:
        return "redis stream"
    return "direct"


def _emit(event: dict[str, Any]) -> None:
    global _redis_down_until
    if path() == "redis stream":
        try:
            client().xadd(stream_name(), {STREAM_FIELD: json.dumps(event)})
            return
        except Exception as exc:
            _redis_down_until = time.monotonic() + REDIS_RETRY_AFTER
            logger.warning("activity: Redis unavailable (%s); writing directly", exc)
    buffer.put(event)


def store(events: list[dict[str, Any]]) -> int:
    """Store a batch (idempotent by event id); returns how many events it held."""
    if not events:
        return 0
    sessions = {e["session"] for e in events}
    known = {
        str(pk) for pk in ClassSession.objects.filter(pk__in=sessions).values_list("pk", flat=True)
    }
    rows = [
        ActivityEvent(
            event_id=e["event_id"],
            session_id=e["session"],
            user_id=e.get("user"),
            kind=e["kind"],
            step=e.get("step") or 0,
            data=e.get("data") or {},
            at=datetime.fromisoformat(e["at"]),
        )
        for e in events
        if e["session"] in known  # a deleted session's events have nowhere to go
    ]
    with transaction.atomic():
        ActivityEvent.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    return len(events)


class DirectBuffer:
    """Events waiting to be stored by this process (the path without Redis)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._storing = threading.Lock()  # a flush waits for one under way (its rows count)
        self._items: list[dict[str, Any]] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def put(self, event: dict[str, Any]) -> None:
        """Queue one event; the flusher stores it within the interval."""
        with self._lock:
            self._items.append(event)
            full = len(self._items) >= settings.ACTIVITY_BATCH
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="activity-flush", daemon=True
                )
                self._thread.start()
        if full:
            self._wake.set()

    def pending(self) -> int:
        """How many events wait to be stored."""
        with self._lock:
            return len(self._items)

    def flush(self) -> int:
        """Store what is queued now (the flusher does this; tests and shutdown call it too)."""
        with self._storing:
            with self._lock:
                batch, self._items = self._items, []
            if not batch:
                return 0
            try:
                return store(batch)
            except Exception:
                logger.exception("activity: could not store %d events; retrying", len(batch))
                with self._lock:
                    self._items[:0] = batch
                return 0

    def _run(self) -> None:
        while True:
            self._wake.wait(settings.ACTIVITY_FLUSH_SECONDS)
            self._wake.clear()
            if not self._items:  # idle: no database work (checking a connection opens one)
                continue
            try:
                close_old_connections()
                self.flush()
            except Exception:  # the flusher outlives a bad moment of the database
                logger.exception("activity: the flusher failed; it goes on")


buffer = DirectBuffer()


def flush() -> int:
    """Store this process's queued direct events now."""
    return buffer.flush()


atexit.register(flush)
