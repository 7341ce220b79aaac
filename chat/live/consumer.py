"""The conversation socket: `/ws/chat/<uuid>/`, spoken to by the htmx ws extension.

Thin by design: `connect` checks who and where (close codes 4401/4403/4404/4429),
`receive` spends the socket's frame budget, validates the frame and dispatches it to the
action a subject registered, the group handlers hand frames to the page's cursor. Frames
are pre-rendered fragments. A handler that crashes closes the socket with 1011 and the
disconnect cleanup still runs (the socket's Connection row never outlives it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils.translation import gettext as _

from chat import events, frames
from chat.actions import run_page_hooks
from chat.coach import tasks
from chat.dbasync import db_async
from chat.live import actions, delivery, limits, presence
from chat.live.delivery import PageCursor
from chat.live.limits import CLOSE_TOO_MANY_FRAMES, FrameBudget, Verdict
from chat.live.presence import CLOSE_FORBIDDEN, CLOSE_NOT_SIGNED_IN, CLOSE_TOO_MANY_SOCKETS
from chat.live.protocol import parse_frame
from chat.live.sessions import session_key_of

try:  # what daphne's websocket protocol raises on a send after the client closed
    from autobahn.exception import Disconnected as PageGoneError
except ImportError:  # pragma: no cover - another ASGI server

    class PageGoneError(Exception):  # type: ignore[no-redef]
        """Never raised."""


logger = logging.getLogger(__name__)

CLOSE_SERVER_ERROR = 1011
BUDGET_VERDICT = "practalk.budget"  # a dropped frame the page must hear about

# Clean-ups that outlive their consumer (daphne cancelled it): held so they are not
# garbage-collected while they run.
_CLEANUPS: set[asyncio.Task[None]] = set()


class ChatConsumer(AsyncWebsocketConsumer):
    """One open conversation page."""

    conversation: Any = None
    closing = False
    _cleanup: asyncio.Task[None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Channels' consumer, reading the page's frames through its frame budget.

        daphne cancels a consumer still busy `application_close_timeout` (10 s) after its
        page closed: a thousand pages closing at once on a busy process queue that long for
        the database. The clean-up then runs anyway, on its own, so no Connection row and
        no group membership outlives its page.
        """
        self.budget = FrameBudget()
        try:
            await super().__call__(scope, self._within_budget(receive), send)
        except asyncio.CancelledError:
            self._start_cleanup()
            raise

    def _within_budget(self, receive: Any) -> Any:
        """The server's `receive`, dropping frames over the socket's budget as they are read.

        Dropped here, a flood is worked off as fast as the server reads it (a queued frame
        comes back without a task switch): no parsing, no handler, no database. Handling
        each one in turn left the queue seconds behind the flood, the server busy with it
        long after it stopped, and the hard limit reached only then.
        """

        async def receive_within_budget() -> dict[str, Any]:
            while True:
                message = await receive()
                if message.get("type") != "websocket.receive":
                    return dict(message)
                if self.closing:
                    continue
                verdict = self.budget.frame()
                if verdict is Verdict.ADMIT:
                    return dict(message)
                if verdict is Verdict.DROP:
                    continue
                self.closing = verdict is Verdict.CLOSE
                return {"type": "websocket.receive", BUDGET_VERDICT: verdict}

        return receive_within_budget

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its `close_old_connections()` before every event.

        Channels runs that in the process's one shared sync thread before each handler, so
        every token frame for every page waited behind any slow database call in the process
        (a locked SQLite, a slow query): one send stalled all streams. Every database call
        here goes through `db_async` (chat/dbasync.py), which closes old connections itself.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        try:
            await handler(message)
        except StopConsumer:
            raise
        except Exception:
            # Uncaught, the server would close with 1011 and never run `disconnect`: the
            # Connection row stayed, counting against the person's open pages for a minute.
            logger.exception("socket %s: %s failed", self.channel_name, message.get("type"))
            with contextlib.suppress(PageGoneError):
                await self.close(code=CLOSE_SERVER_ERROR)
            await self.cleanup()
            raise StopConsumer() from None

    async def send(
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        """Send, unless the page is already gone.

        A page that closes while a handler still works (a resync, a long send) makes daphne
        raise on the next send; uncaught, that ended the consumer before its disconnect
        handler ran, and the socket stayed registered (seen with 1,000 sockets in bench/).
        The disconnect event is queued behind this handler and cleans up next.
        """
        try:
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)
        except PageGoneError:
            logger.debug("page %s closed before a frame could reach it", self.channel_name)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Close the page; frames it sends after this are not handled.

        The close frame only asks the browser to go: until its answer arrives, frames it
        sent meanwhile still come in. A page closed because its account was deactivated
        or its session ended must not post one more message on the way out.
        """
        self.closing = True
        await super().close(code=code, reason=reason)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accept, then close with a code: a refused handshake carries no reason to the page.
            await self.accept()
            await self.close(code=CLOSE_NOT_SIGNED_IN)
            return
        if await limits.held_for_cool_down(user.pk):
            # A socket of theirs flooded: no set-up work, no fresh budget for a while.
            await self.accept()
            await self.send_notice(_("Too many frames: this page was closed. Reload it."))
            await self.close(code=CLOSE_TOO_MANY_FRAMES)
            return
        conversation, code = await db_async(presence.page_open)(
            user, self.scope["url_route"]["kwargs"]["conversation_id"], self.channel_name
        )
        if conversation is not None:
            # Set before the next wait: from here a cancelled consumer's clean-up has a
            # Connection row to forget.
            self.user = user
            self.conversation = conversation
            self.group = events.conv_group(conversation.pk)
            self.cursor = PageCursor()
            self.state: dict[str, Any] = {}
        # Accepted only now: a client cannot queue frames while the page is being set up.
        await self.accept()
        if conversation is None:
            if code == CLOSE_TOO_MANY_SOCKETS:
                await self.send_notice(_("Too many open pages."))
            await self.close(code=code)
            return
        self.session_key = session_key_of(self.scope)
        # The gateway vouches per handshake; a scope without the session middleware (tests
        # that set the user) has no session to check: only the account is checked then.
        self.sessionless = "gateway_identity" in self.scope or "session" not in self.scope
        await self.join_groups()
        if conversation.is_room:
            # The room learns within PRESENCE_INTERVAL; this page gets the list on resync.
            await presence.presence_note(conversation)

    async def disconnect(self, code: int) -> None:
        await self.cleanup()

    async def cleanup(self) -> None:
        """Forget the socket (once); shielded, so a cancelled consumer's clean-up completes."""
        task = self._start_cleanup()
        if task is not None:
            await asyncio.shield(task)

    def _start_cleanup(self) -> asyncio.Task[None] | None:
        if self.conversation is None:
            return None
        if self._cleanup is None:
            self._cleanup = asyncio.get_running_loop().create_task(self._forget())
            _CLEANUPS.add(self._cleanup)
            self._cleanup.add_done_callback(_CLEANUPS.discard)
        return self._cleanup

    async def _forget(self) -> None:
        """Groups, the Connection row and read point (one database call), the room's list."""
        await self.channel_layer.group_discard(self.group, self.channel_name)
        await self.channel_layer.group_discard(events.user_group(self.user.pk), self.channel_name)
        await db_async(presence.page_close)(
            self.channel_name, self.user, self.conversation, self.cursor.last_seq
        )
        if self.conversation.is_room:
            await presence.presence_note(self.conversation)
        await run_page_hooks("close", self)

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        """A frame within the budget, or word that frames were dropped (tell or close)."""
        verdict = message.get(BUDGET_VERDICT)
        if verdict is not None:
            await self.admitted(verdict)
            return
        await super().websocket_receive(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.conversation is None:
            return
        payload, problem = parse_frame(text_data, bytes_data)
        if problem:
            await self.send_notice(problem)
            return
        if not await self.admitted(self.budget.action(payload.get("action"))):
            return
        await actions.dispatch(self, payload)

    async def admitted(self, verdict: Verdict) -> bool:
        """Whether to handle the frame; a dropped one may tell the page, or close it."""
        if verdict is Verdict.ADMIT:
            return True
        if verdict is Verdict.DROP_AND_TELL:
            await self.send_notice(_("You are sending too fast: some of it was ignored."))
        elif verdict is Verdict.CLOSE:
            self.closing = True
            logger.warning("socket %s closed: too many frames", self.channel_name)
            await self.send_notice(_("Too many frames: this page was closed. Reload it."))
            await self.close(code=CLOSE_TOO_MANY_FRAMES)
            await limits.start_cool_down(self.user.pk)
        return False

    # --- group handlers -------------------------------------------------------------------

    async def chat_frame(self, event: dict[str, Any]) -> None:
        """A pre-rendered frame: forwarded as the page's cursor decides (order, no duplicates)."""
        decision = self.cursor.admit(event)
        if decision.want_snapshot:
            await tasks.request_snapshot(self.conversation.pk, self.channel_name)
        if decision.catch_up_until is not None:
            missed, _growing = await db_async(delivery.catch_up)(
                self.conversation, decision.catch_up_after, until_seq=decision.catch_up_until
            )
            await actions.send_messages(self, missed)
        if decision.forward:
            await self.send(text_data=event["html"])

    async def access_revoked(self, event: dict[str, Any]) -> None:
        """The user left or was removed from this room, or it was deleted: close this page."""
        if self.conversation is None or event.get("conversation") != self.conversation.pk.hex:
            return
        await self.channel_layer.group_discard(self.group, self.channel_name)
        self.cursor.forget()
        await self.close(code=event.get("code", CLOSE_FORBIDDEN))

    async def session_ended(self, event: dict[str, Any]) -> None:
        """The user logged out (or lost access) in another tab."""
        await self.close(code=CLOSE_NOT_SIGNED_IN)

    # --- what actions may do with this page (chat.actions.Page) ----------------------------

    async def send_frame(self, html: str) -> None:
        """Send a fragment to this page only."""
        await self.send(text_data=html)

    async def send_notice(self, text: str, *, level: str = "error") -> None:
        """A short notice on this page only (not stored)."""
        await self.send(text_data=frames.notice(text, level=level))

    async def join_groups(self) -> None:
        """Join (again: idempotent) the conversation's and the user's groups."""
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.channel_layer.group_add(events.user_group(self.user.pk), self.channel_name)
