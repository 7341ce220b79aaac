"""A frame for a page that has just closed must not end the consumer before it cleans up."""

from __future__ import annotations

from typing import Any

import pytest

from chat.live.consumer import ChatConsumer, PageGoneError


@pytest.mark.asyncio
async def test_a_send_to_a_page_that_closed_is_dropped_quietly() -> None:
    consumer = ChatConsumer()
    sent: list[dict[str, Any]] = []

    async def gone(message: dict[str, Any]) -> None:
        sent.append(message)
        raise PageGoneError("Attempt to send on a closed protocol")

    consumer.base_send = gone
    consumer.channel_name = "test.gone"

    await consumer.send(text_data="<div>late frame</div>")  # no exception

    assert sent == [{"type": "websocket.send", "text": "<div>late frame</div>"}]


@pytest.mark.asyncio
async def test_other_send_errors_still_surface() -> None:
    consumer = ChatConsumer()

    async def broken(message: dict[str, Any]) -> None:
        raise RuntimeError("bug")

    consumer.base_send = broken
    with pytest.raises(RuntimeError):
        await consumer.send(text_data="x")
