"""Dispatching a browser frame to its action, and the socket's own actions (resync, heartbeat).

Every subject's `actions.py` is imported here, which registers its actions (see
`chat.actions`); a new subject adds its module to SUBJECT_ACTIONS.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, cast

from django.utils.translation import gettext as _

from chat import frames
from chat.actions import Page, action, handler_for, run_page_hooks
from chat.coach import tasks
from chat.dbasync import db_async
from chat.live import delivery, presence, sessions
from chat.live.delivery import PageCursor
from chat.live.presence import CLOSE_NOT_SIGNED_IN
from chat.models import Conversation, Message

SUBJECT_ACTIONS = ("chat.practice.actions", "chat.rooms.actions", "chat.classes.actions")
ALL_KINDS = list(Conversation.Kind)

for _module in SUBJECT_ACTIONS:
    importlib.import_module(_module)


class LivePage(Page, Protocol):
    """The consumer as the socket's own actions see it."""

    cursor: PageCursor
    session_key: str | None
    sessionless: bool

    async def join_groups(self) -> None:
        """Join (again: idempotent) the conversation's and the user's groups."""
        ...

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the socket with `code`."""
        ...


async def dispatch(page: Page, payload: dict[str, Any]) -> None:
    """Run the handler registered for the frame's action on this kind of conversation."""
    handler = handler_for(payload.get("action"), page.conversation.kind)
    if handler is None:
        await page.send_notice(_("Unknown action."))
        return
    await handler(page, payload)


async def send_messages(page: LivePage, messages: list[Message]) -> None:
    """Messages from the database, appended; a growing one waits for its snapshot."""
    if not messages:
        return
    growing = page.cursor.shown(messages)
    await page.send_frame(frames.append_messages(frames.render_message(m) for m in messages))
    if growing:
        await tasks.request_snapshot(page.conversation.pk, page.channel_name)


async def send_replaced(page: LivePage, messages: list[Message]) -> None:
    """Messages replaced whole (replies that ended, or growing ones as they stand)."""
    for message in messages:
        await page.send_frame(frames.message_replaced(message))


@action("resync", kinds=ALL_KINDS)
async def on_resync(any_page: Page, payload: dict[str, Any]) -> None:
    """The page (re)connected and says what it has: send everything it missed."""
    page = cast(LivePage, any_page)  # registered for the socket itself: the consumer
    last = delivery.parse_last_seq(payload.get("last_seq", 0))
    if last is None:
        await page.send_notice(_("Bad resync request."))
        return
    state = await db_async(delivery.resync)(
        page.user, page.conversation, last, payload.get("streaming")
    )
    page.cursor.last_seq = state.last_seq
    await send_messages(page, state.missed)
    page.cursor.shown(state.growing)
    await send_replaced(page, state.growing)
    await send_replaced(page, state.ended)
    if state.growing:
        await tasks.request_snapshot(page.conversation.pk, page.channel_name)
    for card in state.cards:
        await page.send_frame(card)
    await page.send_frame(state.quota_html)
    if state.members is not None:
        # Presence frames sent before this page synced were dropped: send it the current list.
        await page.send_frame(frames.presence(state.members))
    await run_page_hooks("resync", page)


def _seen(page: LivePage) -> bool:
    """One thread hop for the heartbeat's database work: the session check, then last_seen."""
    if not sessions.still_signed_in(page.session_key, page.user.pk, sessionless=page.sessionless):
        return False
    presence.connection_seen(page.channel_name)
    return True


@action("heartbeat", kinds=ALL_KINDS)
async def on_heartbeat(any_page: Page, payload: dict[str, Any]) -> None:
    """The page is still there: check its session, heal its groups, end orphaned replies."""
    page = cast(LivePage, any_page)  # registered for the socket itself: the consumer
    signed_in = await db_async(_seen)(page)
    if not signed_in:
        # The session expired or was ended, the password changed, the account went.
        await page.close(code=CLOSE_NOT_SIGNED_IN)
        return
    # A layer drops a channel from its groups when its queue holds expired messages (a
    # stalled process): joining again (idempotent) heals that within one heartbeat.
    await page.join_groups()
    if page.conversation.is_room:
        await presence.presence_note(page.conversation)
    growing = payload.get("streaming")
    last_seq = page.cursor.last_seq
    if growing and last_seq is not None:
        # Replies the page still shows growing: if their process died, end them here.
        missed, ended = await db_async(delivery.settle_orphans)(
            page.conversation, last_seq, growing
        )
        await send_messages(page, missed)
        await send_replaced(page, ended)
    await run_page_hooks("heartbeat", page)
