"""The conversation socket: `/ws/chat/<uuid>/`, spoken to by the htmx ws extension.

Thin by design: `connect` checks who and where, `receive` validates the frame
and calls services; frames come back as pre-rendered out-of-band fragments.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils.translation import gettext as _

from chat import frames, live, services, streaming

try:  # what daphne's websocket protocol raises on a send after the client closed
    from autobahn.exception import Disconnected as PageGone
except ImportError:  # pragma: no cover - another ASGI server

    class PageGone(Exception):  # type: ignore[no-redef]
        """Never raised."""


logger = logging.getLogger(__name__)

CLOSE_NOT_SIGNED_IN = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY_SOCKETS = 4429
TYPING_EVERY = 2.0
MAX_SEQ = 2**63 - 1  # the largest sequence number the database can hold


class ChatConsumer(AsyncWebsocketConsumer):
    """One open conversation page."""

    conversation: Any = None
    last_seq: int | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its `close_old_connections()` before every event.

        Channels runs that in the process's one shared sync thread before each handler, so
        every token frame for every page waited behind any slow database call in the process
        (a locked SQLite, a slow query): one send stalled all streams. Every database call
        here goes through `database_sync_to_async`, which closes old connections itself.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

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
        except PageGone:
            logger.debug("page %s closed before a frame could reach it", self.channel_name)

    async def connect(self) -> None:
        user = self.scope.get("user")
        # Accept, then close with a code: a refused handshake carries no reason to the page.
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_NOT_SIGNED_IN)
            return
        access = await database_sync_to_async(live.check_access)(
            user, self.scope["url_route"]["kwargs"]["conversation_id"]
        )
        if access.close_code:
            await self.close(code=access.close_code)
            return
        if not await database_sync_to_async(live.connection_open)(
            user, access.conversation, self.channel_name
        ):
            await self.send(text_data=frames.notice(_("Too many open pages."), level="error"))
            await self.close(code=CLOSE_TOO_MANY_SOCKETS)
            return
        self.user = user
        self.conversation = access.conversation
        self.group = services.conv_group(self.conversation.pk)
        self.awaiting_snapshot: set[str] = set()
        self.stream_parts: dict[str, int] = {}  # the last token frame (`part`) shown per reply
        self.last_typing = 0.0
        self.coach_name = access.coach_name
        await self._join_groups()
        if self.conversation.is_room:
            # The room learns within PRESENCE_INTERVAL; this page gets the list on resync.
            await self._publish_presence()

    async def disconnect(self, code: int) -> None:
        if self.conversation is None:
            return
        await self.channel_layer.group_discard(self.group, self.channel_name)
        await self.channel_layer.group_discard(services.user_group(self.user.pk), self.channel_name)
        await database_sync_to_async(live.connection_close)(self.channel_name)
        if self.last_seq:
            # What the page saw live counts as read (one write per page, not per message).
            await database_sync_to_async(live.mark_read)(
                self.user, self.conversation, self.last_seq
            )
        if self.conversation.is_room:
            await self._publish_presence()

    # --- browser → server -----------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.conversation is None:
            return
        payload, problem = live.parse_frame(text_data, bytes_data)
        if problem:
            await self.send(text_data=frames.notice(problem, level="error"))
            return
        action = payload.get("action")
        handler = {
            "send": self.on_send,
            "stop": self.on_stop,
            "regenerate": self.on_regenerate,
            "typing": self.on_typing,
            "resync": self.on_resync,
            "heartbeat": self.on_heartbeat,
        }.get(action if isinstance(action, str) else "")
        if handler is None:
            await self.send(text_data=frames.notice(_("Unknown action."), level="error"))
            return
        await handler(payload)

    async def on_send(self, payload: dict[str, Any]) -> None:
        text, problem = live.clean_text(payload.get("message"))
        if problem:
            await self.send(text_data=frames.notice(problem, level="error"))
            return
        # One hop to the sync thread for the rate check and the writes (each hop ~1.4 ms).
        outcome = await database_sync_to_async(live.send_message)(
            self.user, self.conversation, text
        )
        if outcome.problem:
            # The text stays in the box: the composer is not cleared.
            await self.send(text_data=frames.notice(outcome.problem, level="error"))
            return
        await self.send(text_data=frames.composer_cleared(room=self.conversation.is_room))
        await self._run_exchange(outcome.exchange)
        if outcome.exchange.quota_refused:
            await self.send(text_data=frames.notice(live.quota_refused_text(), level="error"))

    async def on_stop(self, payload: dict[str, Any]) -> None:
        ids = await database_sync_to_async(live.stoppable_replies)(self.user, self.conversation)
        for message_id in ids:
            await streaming.request_stop(self.conversation.pk, message_id)

    async def on_regenerate(self, payload: dict[str, Any]) -> None:
        outcome = await database_sync_to_async(live.regenerate)(self.user, self.conversation)
        if outcome.problem:
            await self.send(text_data=frames.notice(outcome.problem, level="error"))
            return
        for message_id in outcome.exchange.deleted_ids:
            await services.publish(
                self.group, services.frame_event(frames.message_deleted(message_id))
            )
        await self._run_exchange(outcome.exchange)

    async def on_typing(self, payload: dict[str, Any]) -> None:
        now = time.monotonic()
        if not self.conversation.is_room or now - self.last_typing < TYPING_EVERY:
            return
        self.last_typing = now
        await services.publish(
            self.group,
            services.frame_event(frames.typing(self.user.pk, self.user.display_name)),
        )

    async def on_resync(self, payload: dict[str, Any]) -> None:
        last = payload.get("last_seq", 0)
        try:
            last = max(0, int(last or 0))
            if last > MAX_SEQ:  # 10**30 would overflow the database's integer and kill the socket
                raise ValueError(last)
        except (TypeError, ValueError, OverflowError):
            await self.send(text_data=frames.notice(_("Bad resync request."), level="error"))
            return
        state = await database_sync_to_async(live.resync)(
            self.user, self.conversation, last, payload.get("streaming")
        )
        self.last_seq = state.last_seq
        await self._send_messages(state.missed)
        for message in state.growing:
            self.awaiting_snapshot.add(str(message.pk))
            await self.send(text_data=frames.message_replaced(message, coach_name=self.coach_name))
        await self._send_ended(state.ended)
        if state.growing or any(m.status == "streaming" for m in state.missed):
            await streaming.request_snapshot(self.conversation.pk)
        await self.send(text_data=state.quota_html)
        if state.members is not None:
            # Presence frames sent before this page synced were dropped: send it the current list.
            await self.send(text_data=frames.presence(state.members))

    async def on_heartbeat(self, payload: dict[str, Any]) -> None:
        # A layer drops a channel from its groups when its queue holds expired messages (a
        # stalled process): joining again (idempotent) heals that within one heartbeat.
        await self._join_groups()
        await database_sync_to_async(live.connection_seen)(self.channel_name)
        if self.conversation.is_room:
            await self._publish_presence()
        growing = payload.get("streaming")
        if growing and self.last_seq is not None:
            # Replies the page still shows growing: if their process died, end them here.
            missed, ended = await database_sync_to_async(live.settle_orphans)(
                self.conversation, self.last_seq, growing
            )
            await self._send_messages(missed)
            self.last_seq = max([self.last_seq, *(m.seq for m in missed)])
            await self._send_ended(ended)

    # --- server → browser -----------------------------------------------------------------

    async def chat_frame(self, event: dict[str, Any]) -> None:
        """A pre-rendered frame from the group: forward it, keeping order and no duplicates."""
        if self.last_seq is None:
            # Before the page said what it has, everything comes from the database on resync.
            return
        seq = event.get("seq")
        if seq is not None:
            if seq <= self.last_seq:
                return
            if seq > self.last_seq + 1:
                # A frame was lost (channel over capacity) or overtaken: fill from the database.
                missed, _growing = await database_sync_to_async(live.catch_up)(
                    self.conversation, self.last_seq, until_seq=seq - 1
                )
                await self._send_messages(missed)
                if any(m.status == "streaming" for m in missed):
                    await streaming.request_snapshot(self.conversation.pk)
            self.last_seq = seq
        parts = self.stream_parts
        streamed = event.get("stream")
        if streamed is not None:
            if streamed in self.awaiting_snapshot:
                return
            part = event.get("part")
            if part is not None:
                last = parts.get(streamed, 0)
                if part <= last:
                    return  # already shown
                if part > last + 1:
                    # A token frame never arrived (group_send drops past a channel's capacity):
                    # appending after the hole would garble the reply; a snapshot repairs it.
                    self.awaiting_snapshot.add(streamed)
                    await streaming.request_snapshot(self.conversation.pk)
                    return
                parts[streamed] = part
        if snapshot := event.get("snapshot"):
            self.awaiting_snapshot.discard(snapshot)
            parts[snapshot] = event.get("part") or 0  # the last token frame it includes
        if final := event.get("final"):
            self.awaiting_snapshot.discard(final)
            parts.pop(final, None)
        await self.send(text_data=event["html"])

    async def access_revoked(self, event: dict[str, Any]) -> None:
        """The user left or was removed from this room, or it was deleted: close this page."""
        if self.conversation is None or event.get("conversation") != self.conversation.pk.hex:
            return
        await self.channel_layer.group_discard(self.group, self.channel_name)
        self.last_seq = None  # nothing more reaches this page, even frames already queued
        await self.close(code=event.get("code", CLOSE_FORBIDDEN))

    async def session_ended(self, event: dict[str, Any]) -> None:
        """The user logged out in another tab."""
        await self.close(code=CLOSE_NOT_SIGNED_IN)

    # --- helpers --------------------------------------------------------------------------

    async def _send_messages(self, messages: list[Any]) -> None:
        if not messages:
            return
        for message in messages:
            if message.status == "streaming":
                self.awaiting_snapshot.add(str(message.pk))
        html = [frames.render_message(m, coach_name=self.coach_name) for m in messages]
        await self.send(text_data=frames.append_messages(html))

    async def _send_ended(self, replies: list[Any]) -> None:
        """The final frame of replies the page still shows growing."""
        for message in replies:
            await self.send(text_data=frames.message_replaced(message, coach_name=self.coach_name))

    async def _run_exchange(self, exchange: services.Exchange) -> None:
        job = None
        if exchange.reply is not None and exchange.request is not None:
            # Ask the model first; its frames wait until the reply's own frame went out.
            job = streaming.ReplyJob(
                message=exchange.reply,
                conversation_id=self.conversation.pk,
                user_id=self.user.pk,
                usage_id=exchange.usage_id,
                request=exchange.request,
                coach_name=self.coach_name,
            )
            streaming.start_reply(job)
        try:
            for message in (exchange.user_message, exchange.reply):
                if message is not None:
                    html = frames.message_appended(message, coach_name=self.coach_name)
                    await services.publish(self.group, services.frame_event(html, seq=message.seq))
        finally:
            # Even if the layer failed, the reply must go on (pages catch up from the database).
            if job is not None:
                job.announced.set()
        if exchange.reply is not None or exchange.quota_refused:
            html = frames.quota(exchange.remaining, exchange.limit, streaming.quota.reset_at())
            await services.publish(services.user_group(self.user.pk), services.frame_event(html))

    async def _join_groups(self) -> None:
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.channel_layer.group_add(services.user_group(self.user.pk), self.channel_name)

    async def _publish_presence(self) -> None:
        await live.presence_note(self.conversation)
