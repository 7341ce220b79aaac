"""Socket action handlers that ask the coach; practice and rooms register them for their pages."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Any

from chat import events, frames
from chat.actions import Page
from chat.coach import quota, sending, tasks
from chat.dbasync import db_async


async def _quota_notice(page: Page) -> None:
    """The empty quota, with its one reset moment (localised to the reader by the page)."""
    html = frames.notice(
        sending.quota_refused_text(), level="error", reset_at=quota.reset_at(), cause="quota"
    )
    await page.send_frame(html)


async def _problem_notice(page: Page, outcome: sending.SendOutcome) -> None:
    """A refused send or regenerate: the text stays in the box, the notice says why."""
    if outcome.cause == "quota":
        await _quota_notice(page)
    elif outcome.cause:
        await page.send_frame(frames.notice(outcome.problem, level="error", cause=outcome.cause))
    else:
        await page.send_notice(outcome.problem)


_ABANDONING: set[asyncio.Task[None]] = set()


async def _stored(hop: Awaitable[sending.SendOutcome]) -> sending.SendOutcome:
    """The send's database hop, run to its end even if this page's handler is cancelled.

    The hop commits in its pool thread regardless; a reply it opened that no task will
    ever own is then ended failed and refunded (`tasks.abandon_exchange`).
    """
    future = asyncio.ensure_future(hop)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(_abandon_if_opened)
        raise


def _abandon_if_opened(future: asyncio.Future[sending.SendOutcome]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    exchange = future.result().exchange
    if exchange is not None and exchange.reply is not None:
        task = asyncio.ensure_future(tasks.abandon_exchange(exchange))
        _ABANDONING.add(task)
        task.add_done_callback(_ABANDONING.discard)


def _answer_id(value: object) -> uuid.UUID | None:
    """The answer a send re-answers (answer again, edit and resend), when it names one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def on_send(page: Page, payload: dict[str, Any]) -> None:
    """A message from the page; in practice (or on @coach in a room) the coach answers."""
    text, problem = sending.clean_text(payload.get("message"))
    if problem:
        await page.send_notice(problem)
        return
    parent_id = _answer_id(payload.get("parent"))
    # One hop to the sync thread for the rate check and the writes (each hop ~1.4 ms).
    seconds = sending.clean_speech_seconds(payload.get("speech_seconds"))
    outcome = await _stored(
        db_async(sending.send_message)(
            page.user, page.conversation, text, seconds, parent_id=parent_id
        )
    )
    if outcome.problem or outcome.exchange is None:
        # The text stays in the box: the composer is not cleared.
        await _problem_notice(page, outcome)
        return
    # Answer again: the replaced path leaves the page (it stays stored, as another version).
    group = events.conv_group(page.conversation.pk)
    for message_id in outcome.exchange.deleted_ids:
        await events.publish(group, events.frame(frames.message_deleted(message_id)))
    # The reply task asks the model before anything is rendered, then publishes the exchange.
    await tasks.start_exchange(outcome.exchange, user_id=page.user.pk)
    await page.send_frame(frames.composer(page.conversation))

    if outcome.exchange.quota_refused:
        await _quota_notice(page)


async def on_stop(page: Page, payload: dict[str, Any]) -> None:
    """Stop the replies this person may stop, wherever they run."""
    ids = await db_async(sending.stoppable_replies)(page.user, page.conversation)
    for message_id in ids:
        await tasks.request_stop(page.conversation.pk, message_id)


async def on_regenerate(page: Page, payload: dict[str, Any]) -> None:
    """Replace the last finished reply with a new one."""
    outcome = await _stored(db_async(sending.regenerate)(page.user, page.conversation))
    if outcome.problem or outcome.exchange is None:
        await _problem_notice(page, outcome)
        return
    group = events.conv_group(page.conversation.pk)
    for message_id in outcome.exchange.deleted_ids:
        await events.publish(group, events.frame(frames.message_deleted(message_id)))
    await tasks.start_exchange(outcome.exchange, user_id=page.user.pk)
