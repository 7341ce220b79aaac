"""The page's message list renders each message exactly as the socket sends it.

The list is one template pass (`{% message_item %}` over the partial); the socket renders
one message with `frames.render_message`. Both must make the same markup, byte for byte.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from chat import conversations, frames
from chat.coach import feedback
from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db

OPEN = re.compile(r'<div id="messages"[^>]*>\s*(?:<p class="empty[^<]*</p>\s*)?')
CLOSE = re.compile(r"\s*</div>\s*(?:<div id=\"typing\"[^>]*></div>\s*)?<div id=\"notice\"")


@pytest.fixture
def learner(make_user):
    return make_user(nickname="Reader <b>")


def page_list(client, user, url: str) -> str:
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    start, end = OPEN.search(html), CLOSE.search(html)
    assert start and end, "no message list on the page"
    return html[start.end() : end.start()]


def socket_markup(conversation: Conversation) -> str:
    shown = conversations.latest_messages(conversation.pk)
    return "".join(frames.render_message(m) for m in shown).strip()


def test_a_practice_page_lists_each_kind_of_message_as_the_socket_renders_it(
    client, learner, persona
):
    from chat.practice import services

    conv = services.practice_start(user=learner, persona=persona)
    answer = conversations.message_create(
        conversation=conv, author=learner, content="Um, I led the team & we **shipped**."
    )
    feedback.feedback_record(message=answer, conversation=conv)
    for status, content in [
        (Message.Status.COMPLETE, "A *finished* reply with `code`"),
        (Message.Status.STREAMING, "Growing **text**\n\nand an open"),
        (Message.Status.STOPPED, "Stopped half"),
        (Message.Status.FAILED, ""),
    ]:
        conversations.message_create(
            conversation=conv,
            author=None,
            role=Message.Role.ASSISTANT,
            status=status,
            content=content,
        )
    conversations.message_create(
        conversation=conv,
        author=None,
        role=Message.Role.SYSTEM,
        kind=Message.Kind.NOTICE,
        content="A notice",
    )

    listed = page_list(client, learner, reverse("conversation", args=[conv.pk]))

    assert listed.count("<article") == 7
    assert 'data-testid="feedback"' in listed and 'data-testid="read-aloud"' in listed
    assert 'aria-busy="true"' in listed and "Reader &lt;b&gt;" in listed
    assert re.sub(r"</article>\n", "</article>", listed) == socket_markup(conv)


def test_a_room_page_lists_messages_as_the_socket_renders_them(client, owner, guest, room):
    conversations.message_create(conversation=room, author=owner, content="Hello <i>all</i>")
    conversations.message_create(conversation=room, author=guest, content="Hi!")

    listed = page_list(client, guest, reverse("room", args=[room.pk]))

    assert listed.count("<article") == 3  # the guest's join notice and two messages
    assert re.sub(r"</article>\n", "</article>", listed) == socket_markup(room)
