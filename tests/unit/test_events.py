"""The one road out (chat.events): each event type, sent the way its callers send it."""

from __future__ import annotations

import uuid

import pytest
import pytest_asyncio
from channels.layers import get_channel_layer
from django.db import transaction

from chat import events

CONV = uuid.UUID("6b1f4bd3-5f9e-4c4c-9a43-9b7c9d7e0f00")


@pytest_asyncio.fixture
async def listener():
    layer = get_channel_layer()
    channel = await layer.new_channel("test.")
    joined = []

    async def join(group: str) -> str:
        await layer.group_add(group, channel)
        joined.append(group)
        return channel

    yield layer, channel, join
    for group in joined:
        await layer.group_discard(group, channel)


def test_group_names_are_spelled_once_here():
    assert events.conv_group(CONV) == f"conv.{CONV.hex}"
    assert events.conv_group(str(CONV)) == f"conv.{CONV.hex}"
    assert events.ctl_group(CONV) == f"ctl.{CONV.hex}"
    assert events.user_group(7) == "user.7"


def test_a_frame_carries_only_the_envelope_fields_given():
    assert events.frame("<p>") == {"type": "chat.frame", "html": "<p>"}
    assert events.frame("<p>", seq=3) == {"type": "chat.frame", "html": "<p>", "seq": 3}
    token = events.frame("<span>", stream="r", part=2)
    assert token == {"type": "chat.frame", "html": "<span>", "stream": "r", "part": 2}
    assert events.frame("x", snapshot="r", part=0)["part"] == 0  # 0 is kept, not dropped
    assert events.frame("x", final="r")["final"] == "r"


@pytest.mark.asyncio
async def test_a_frame_reaches_the_conversation_group(listener):
    layer, _channel, join = listener
    channel = await join(events.conv_group(CONV))
    await events.publish(events.conv_group(CONV), events.frame("<p>hi</p>", seq=1))
    assert await layer.receive(channel) == {"type": "chat.frame", "html": "<p>hi</p>", "seq": 1}


@pytest.mark.asyncio
async def test_access_revoked_reaches_the_users_pages(listener):
    layer, _channel, join = listener
    channel = await join(events.user_group(3))
    await events.publish(events.user_group(3), events.access_revoked(CONV, 4403))
    assert await layer.receive(channel) == {
        "type": "access.revoked",
        "conversation": CONV.hex,
        "code": 4403,
    }


@pytest.mark.asyncio
async def test_session_ended_reaches_the_users_pages(listener):
    layer, _channel, join = listener
    channel = await join(events.user_group(4))
    await events.publish(events.user_group(4), events.session_ended())
    assert await layer.receive(channel) == {"type": "session.ended"}


@pytest.mark.asyncio
async def test_stop_and_snapshot_requests_reach_the_control_group(listener):
    layer, _channel, join = listener
    channel = await join(events.ctl_group(CONV))
    await events.publish(events.ctl_group(CONV), events.reply_stop(None))
    await events.publish(events.ctl_group(CONV), events.reply_snapshot("page-1", ["r1"]))
    assert await layer.receive(channel) == {"type": "reply.stop", "message_id": None}
    assert await layer.receive(channel) == {
        "type": "reply.snapshot",
        "reply_to": "page-1",
        "handled": ["r1"],
    }


@pytest.mark.asyncio
async def test_a_snapshot_goes_to_one_page_only(listener):
    layer, channel, join = listener
    other = await layer.new_channel("test.")
    await events.send_to(channel, events.frame("<article>", snapshot="r", part=4))
    assert (await layer.receive(channel))["snapshot"] == "r"
    await events.send_to(other, events.frame("<i>"))
    assert (await layer.receive(other))["html"] == "<i>"


@pytest.mark.asyncio
async def test_publish_safely_reports_a_broken_layer_instead_of_raising(monkeypatch):
    class BrokenLayer:
        async def group_send(self, group: str, message: dict) -> None:
            raise ConnectionError("redis went away")

    monkeypatch.setattr(events, "get_channel_layer", lambda: BrokenLayer())
    assert await events.publish_safely("conv.x", events.frame("<p>")) is False


@pytest.mark.django_db(transaction=True)
def test_an_event_after_a_write_leaves_only_when_it_commits(monkeypatch):
    sent: list[tuple[str, dict]] = []

    async def record(group: str, event: dict) -> None:
        sent.append((group, event))

    monkeypatch.setattr(events, "publish", record)
    try:
        with transaction.atomic():
            events.publish_on_commit("conv.a", events.frame("<p>rolled back</p>"))
            raise RuntimeError("the write failed")
    except RuntimeError:
        pass
    assert sent == []
    with transaction.atomic():
        events.publish_on_commit("conv.b", events.frame("<p>kept</p>"))
        assert sent == []  # not before the commit
    assert sent == [("conv.b", {"type": "chat.frame", "html": "<p>kept</p>"})]


def test_publish_now_logs_a_broken_layer_and_carries_on(monkeypatch, caplog):
    async def broken(group: str, event: dict) -> None:
        raise ConnectionError("down")

    monkeypatch.setattr(events, "publish", broken)
    events.publish_now("user.1", events.session_ended())
    assert "could not publish" in caplog.text
