"""The in-memory channel layer (one process, no Redis) with its expiry sweep throttled.

Channels' `InMemoryChannelLayer` walks every channel and every group membership on *each*
`receive()` and `group_send()` to drop expired messages: O(sockets) per frame, O(sockets²)
per second. With a thousand sockets that sweep alone saturated a core (see
`bench/results.md`). Expiry is measured in tens of seconds, so sweeping once a second loses
nothing that matters.

Its sends are leaner too: Channels builds (and mostly throws away) a new `asyncio.Queue` on
every `send()` and `receive()`, and `group_send()` starts a task per member. Per member per
frame that was about a fifth of a 1,000-member room's fan-out.
"""

from __future__ import annotations

import asyncio
import time
from copy import deepcopy
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer


class ThrottledInMemoryChannelLayer(InMemoryChannelLayer):
    """`InMemoryChannelLayer` whose expiry sweep runs at most once per `sweep_interval` s."""

    def __init__(self, sweep_interval: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sweep_interval = sweep_interval
        self._next_sweep = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.sweep_interval
        super()._clean_expired()

    def _queue(self, channel: str) -> asyncio.Queue[tuple[float, dict[str, Any]]]:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        return queue

    def _offer(self, channel: str, message: dict[str, Any]) -> bool:
        """Queue a copy of `message` for `channel` (one each, as in Channels); False when full."""
        try:
            self._queue(channel).put_nowait((time.time() + self.expiry, deepcopy(message)))
        except asyncio.QueueFull:
            return False
        return True

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        if not self._offer(channel, message):
            raise ChannelFull(channel)

    async def receive(self, channel: str) -> dict[str, Any]:
        self.require_valid_channel_name(channel)
        self._clean_expired()
        queue = self._queue(channel)
        try:
            _expires, message = await queue.get()
        except BaseException:
            # The receiver went away (its consumer ended): forget its queue if nothing waits
            # in it. On success the queue stays for the next receive instead of being rebuilt.
            if queue.empty():
                self.channels.pop(channel, None)
            raise
        return message

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        # In one pass, no task per member; a full channel misses the message, as in Channels.
        for channel in list(self.groups.get(group, ())):
            self._offer(channel, message)
        # Let the waiting receivers take their copies before the sender goes on, as they did
        # while Channels awaited a task per member: a consumer that sends to its own group
        # during `connect` sees that frame before the page's next one, not after it.
        await asyncio.sleep(0)
