"""The in-memory channel layer with a throttled expiry sweep."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.exceptions import ChannelFull

from project.layers import ThrottledInMemoryChannelLayer


def _expire_everything(layer: ThrottledInMemoryChannelLayer) -> None:
    """Age every queued message past its expiry."""
    for queue in layer.channels.values():
        for index, (_expires, message) in enumerate(queue._queue):
            queue._queue[index] = (time.time() - 1, message)


@pytest.mark.asyncio
async def test_the_sweep_runs_at_most_once_per_interval() -> None:
    layer = ThrottledInMemoryChannelLayer(sweep_interval=60, expiry=60)
    calls = 0
    original = layer._remove_from_groups

    def counting(channel: str) -> None:
        nonlocal calls
        calls += 1
        original(channel)

    layer._remove_from_groups = counting  # type: ignore[method-assign]
    await layer.group_add("room", "a.one")
    await layer.send("a.one", {"type": "x"})
    layer._clean_expired()  # the first sweep: nothing expired yet
    _expire_everything(layer)

    await layer.group_send("room", {"type": "y"})  # within the interval: no sweep

    assert calls == 0
    assert "a.one" in layer.groups["room"]


@pytest.mark.asyncio
async def test_expired_messages_are_still_swept_after_the_interval() -> None:
    layer = ThrottledInMemoryChannelLayer(sweep_interval=0.05, expiry=60)
    await layer.group_add("room", "a.one")
    await layer.group_add("room", "a.two")
    await layer.send("a.one", {"type": "old"})
    _expire_everything(layer)
    await asyncio.sleep(0.06)

    await layer.group_send("room", {"type": "new"})

    # The stale message is gone and, as in Channels, its channel left the group.
    assert "a.one" not in layer.groups["room"]
    assert await layer.receive("a.two") == {"type": "new"}


@pytest.mark.asyncio
async def test_a_group_send_reaches_every_member_once_in_order() -> None:
    layer = ThrottledInMemoryChannelLayer(expiry=60)
    for name in ("a.one", "a.two", "a.three"):
        await layer.group_add("room", name)
    sent = {"type": "x", "n": 1, "tags": ["t"]}
    await layer.group_send("room", sent)
    await layer.group_send("room", {"type": "x", "n": 2})

    got = {
        name: [await layer.receive(name), await layer.receive(name)]
        for name in layer.groups["room"]
    }

    assert all([m["n"] for m in msgs] == [1, 2] for msgs in got.values())
    got["a.one"][0]["tags"].append("changed")  # each receiver has its own copy
    assert got["a.two"][0]["tags"] == ["t"] == sent["tags"]
    assert all(layer.channels.get(name) is None or layer.channels[name].empty() for name in got)


@pytest.mark.asyncio
async def test_a_full_channel_misses_a_group_message_and_the_others_still_get_it() -> None:
    layer = ThrottledInMemoryChannelLayer(expiry=60, capacity=1)
    await layer.group_add("room", "a.full")
    await layer.group_add("room", "a.free")
    await layer.send("a.full", {"type": "old"})
    with pytest.raises(ChannelFull):
        await layer.send("a.full", {"type": "refused"})

    await layer.group_send("room", {"type": "new"})

    assert await layer.receive("a.full") == {"type": "old"}
    assert await layer.receive("a.free") == {"type": "new"}


@pytest.mark.asyncio
async def test_a_receiver_keeps_its_queue_and_a_gone_one_is_forgotten() -> None:
    layer = ThrottledInMemoryChannelLayer(expiry=60)
    waiting = asyncio.create_task(layer.receive("a.one"))
    await asyncio.sleep(0)
    queue = layer.channels["a.one"]
    await layer.send("a.one", {"type": "x"})
    assert await waiting == {"type": "x"}
    assert layer.channels["a.one"] is queue  # reused, not rebuilt for every message

    waiting = asyncio.create_task(layer.receive("a.one"))
    await asyncio.sleep(0)
    waiting.cancel()  # the consumer ended
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert "a.one" not in layer.channels


@pytest.mark.asyncio
async def test_every_member_gets_its_own_copy_shallow_when_flat_deep_otherwise() -> None:
    from project.layers import copy_message

    layer = ThrottledInMemoryChannelLayer()
    for name in ("a.one", "a.two"):
        await layer.group_add("room", name)
    flat = {"type": "chat.frame", "html": "<p>hi</p>", "seq": 3, "part": None}
    nested = {"type": "chat.frame", "data": {"ids": [1, 2]}}
    await layer.group_send("room", flat)
    await layer.group_send("room", nested)
    one, two = (
        [await layer.receive("a.one"), await layer.receive("a.one")],
        [
            await layer.receive("a.two"),
            await layer.receive("a.two"),
        ],
    )
    assert one[0] == two[0] == flat and one[0] is not two[0] and one[0] is not flat
    one[0]["html"] = "changed"
    assert two[0]["html"] == flat["html"] == "<p>hi</p>"
    one[1]["data"]["ids"].append(3)  # a nested value is not shared either
    assert two[1]["data"]["ids"] == nested["data"]["ids"] == [1, 2]
    assert copy_message(flat) == flat and copy_message(nested)["data"] is not nested["data"]
