"""The coach's dashboard, kept current without re-rendering it: only rows that changed.

Learners' events (a page opening, an answer, a hand) mark their row dirty; once per
CLASS_DASHBOARD_BATCH_SECONDS per session this process renders the dirty rows in one
read and sends them to the coach's pages as one frame, however many events came in.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.conf import settings

from chat import events
from chat.classes import frames, selectors
from chat.dbasync import db_async
from chat.models import ClassSession

logger = logging.getLogger(__name__)

ALL = -1  # marks "every row" (the question changed)
_dirty: dict[Any, set[int]] = {}
_flushes: dict[Any, asyncio.Task[None]] = {}


def _rows_frame(session_id: Any, user_ids: list[int] | None) -> str:
    # Read afresh: the caller's copy may predate the coach's last move.
    session = ClassSession.objects.select_related("klass").get(pk=session_id)
    if user_ids is None:
        return "\n".join([frames.dashboard_body(session), frames.counts(session)])
    rows = selectors.dashboard_rows(session, user_ids)
    return "\n".join([frames.dashboard_rows(session, rows), frames.counts(session)])


def push_rows(session_id: Any, user_ids: list[int]) -> None:
    """From sync code after commit: send some learners' rows now (a learner joined)."""
    session = ClassSession.objects.select_related("klass").get(pk=session_id)
    rows = selectors.dashboard_rows(session, user_ids)
    html = "\n".join([frames.new_learner_rows(session, rows), frames.counts(session)])
    events.publish_now(events.user_group(session.klass.coach_id), events.frame(html))


async def note(session: ClassSession, user_id: int) -> None:
    """A learner's row changed: it reaches the coach with the next batch."""
    key = session.pk
    _dirty.setdefault(key, set()).add(user_id)
    if key in _flushes:
        return
    task = asyncio.get_running_loop().create_task(_flush_later(session))
    _flushes[key] = task


async def note_all(session: ClassSession) -> None:
    """Every row changed (a new question): the whole table goes with the next batch."""
    await note(session, ALL)


async def _flush_later(session: ClassSession) -> None:
    key = session.pk
    try:
        await asyncio.sleep(settings.CLASS_DASHBOARD_BATCH_SECONDS)
    finally:
        _flushes.pop(key, None)
        user_ids = sorted(_dirty.pop(key, set()))
    if not user_ids:
        return
    wanted: list[int] | None = None if ALL in user_ids else user_ids
    try:
        html = await db_async(_rows_frame)(session.pk, wanted)
        await events.publish(events.user_group(session.klass.coach_id), events.frame(html))
    except Exception:
        # The coach's next heartbeat or reload shows the rows from the database.
        logger.exception("dashboard flush failed for session %s", session.pk)


async def flush_now() -> None:
    """Wait for every batch due in this process (tests, benchmarks)."""
    while _flushes:
        await asyncio.gather(*list(_flushes.values()), return_exceptions=True)
