"""Streamed Markdown: closed blocks go out rendered once, only the open block is text."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from django.template.loader import render_to_string

from chat import events, frames
from chat.coach import broadcast
from chat.models import Conversation, Message
from chat.rendering import open_block_start, render_markdown

REPLY = (
    "**Situation** first.\n\n"
    "| part | score |\n|---|---|\n| STAR | 4 |\n\n"
    "- one\n- two\n\n"
    "```py\nprint(1)\n```\n\n"
    "Last words\n"
)


@pytest.mark.parametrize(
    ("text", "closed"),
    [
        ("**Situation** hi\n\nThen", "**Situation** hi\n\n"),
        ("para\n\n| a | b |\n|---|---|\n| 1 |", "para\n\n"),
        ("| a | b |\n|---|---|\n| 1 | 2 |\n\n", "| a | b |\n|---|---|\n| 1 | 2 |\n\n"),
        ("# Heading\n", "# Heading\n"),
        ("- a\n\n- b\n", ""),  # a list may go on after a blank line
        ("x\n\n```py\ncode\n\ncode", "x\n\n"),  # an open fence stays open
        ("no newline yet", ""),
    ],
)
def test_only_blocks_a_newer_block_follows_are_closed(text, closed):
    assert text[: open_block_start(text)] == closed


def test_closed_blocks_render_alone_as_they_do_in_the_whole_reply():
    text = REPLY
    pieces = []
    while (split := open_block_start(text)) and split < len(text):
        pieces.append(render_markdown(text[:split]))
        text = text[split:]
    pieces.append(render_markdown(text))

    assert "".join(pieces).replace("\n", "") == render_markdown(REPLY).replace("\n", "")


def test_the_blocks_frame_matches_its_reference_template():
    mid = uuid.uuid4()
    html = frames.blocks_closed(mid, "**bold**\n\n", "tail <b>")

    reference = render_to_string(
        "chat/ws/blocks.html",
        {"message_id": str(mid), "closed": render_markdown("**bold**\n\n"), "tail": "tail <b>"},
    )
    assert html == reference.strip()
    assert "<strong>bold</strong>" in html and "tail &lt;b&gt;" in html


@pytest.fixture
def published(monkeypatch):
    sent: list[dict] = []

    async def publish_safely(group, event):
        sent.append(event)
        return True

    monkeypatch.setattr(events, "publish_safely", publish_safely)
    monkeypatch.setattr(broadcast, "flush_interval", lambda: 0.0)
    return sent


async def stream(text: str, published) -> tuple[broadcast.ReplyBroadcast, list[str]]:
    conversation = Conversation(id=uuid.uuid4(), persona=None)
    message = Message(id=uuid.uuid4(), conversation=conversation, role="assistant")
    parts: list[str] = []
    reply = broadcast.ReplyBroadcast(message, parts)
    for token in re.findall(r"\S+|\s+", text):
        parts.append(token)
        await reply.add(token)
    return reply, [e["html"] for e in published]


@pytest.mark.asyncio
async def test_a_streaming_reply_shows_closed_blocks_rendered_and_keeps_part_numbers(published):
    reply, html = await stream(REPLY, published)

    rendered = "".join(
        m.group(1) for h in html for m in re.finditer(r'-blocks">(.*?)</div><div id=', h, re.S)
    )
    assert "<strong>Situation</strong>" in rendered
    assert "<table>" in rendered and "<li>two</li>" in rendered
    assert '<code class="language-py">' in rendered
    assert "**" not in rendered and "|---|" not in rendered
    # Every frame of the stream is numbered, block frames included (gap detection).
    assert [e["part"] for e in published] == list(range(1, len(published) + 1))
    assert reply.open_text == "Last words\n"
    assert REPLY[: reply.closed] + reply.open_text == REPLY


@pytest.mark.asyncio
async def test_a_snapshot_splits_where_the_stream_did(published):
    reply, _html = await stream(REPLY, published)
    reply.message.content = REPLY
    reply.message.status = Message.Status.STREAMING

    snapshot = frames.message_replaced(reply.message, closed=reply.closed)

    blocks = re.search(r'-blocks" class="blocks" hx-disable>(.*?)</div><div', snapshot, re.S)
    body = re.search(r'-body" class="body plain" hx-disable>(.*?)</div>', snapshot, re.S)
    assert blocks is not None and "<table>" in blocks.group(1)
    assert body is not None and body.group(1) == "Last words<br>"


@pytest.mark.asyncio
async def test_a_snapshot_asked_for_as_the_reply_ends_is_not_sent_after_its_final_frame(
    published, monkeypatch
):
    """A reopened page asked for a snapshot just as the reply ended: the snapshot's task ran
    after the final frame and showed the finished reply growing again (reliability F1)."""
    sent_to: list[tuple[str, dict]] = []

    async def send_to(channel, event):
        sent_to.append((channel, event))

    monkeypatch.setattr(events, "send_to", send_to)
    reply, _html = await stream("Some words", published)
    reply.want_snapshot("page-1")  # its send is a task that has not run yet
    finished = reply.message
    finished.status = Message.Status.COMPLETE
    finished.content = "Some words"
    await reply.final(finished, None)
    await asyncio.sleep(0.01)  # the snapshot's task runs now
    assert sent_to == []
    assert published[-1].get("final") == reply.message_id
