"""A finished coach message keeps its rendered HTML: pages show it without rendering again."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from chat import conversations, frames
from chat.coach import replies
from chat.models import Message
from chat.rendering import RENDERER_VERSION

pytestmark = pytest.mark.django_db


@pytest.fixture
def learner(make_user):
    return make_user(nickname="Reader")


@pytest.fixture
def conversation(learner, persona):
    from chat.practice import services

    return services.practice_start(user=learner, persona=persona)


def finished_reply(learner, conversation, text: str) -> Message:
    exchange = replies.exchange_start(
        user=learner, conversation=conversation, text="My answer", ask_ai=True, require_ai=True
    )
    message, _error = replies.reply_finish(
        message_id=exchange.reply.pk,
        content=text,
        status=Message.Status.COMPLETE,
        metadata={},
        usage_id=exchange.usage_id,
    )
    assert message is not None
    return message


def test_a_finished_reply_stores_its_sanitised_html(learner, conversation):
    reply = finished_reply(learner, conversation, "**Situation** first <script>x</script>")
    stored = Message.objects.get(pk=reply.pk)
    assert stored.html_version == RENDERER_VERSION
    assert "<strong>Situation</strong>" in stored.html and "<script>" not in stored.html


def test_the_opening_line_is_stored_rendered_and_a_learners_text_is_not(learner, conversation):
    opening = Message.objects.get(conversation=conversation, seq=1)
    assert opening.html and opening.html_version == RENDERER_VERSION
    mine = conversations.message_create(conversation=conversation, author=learner, content="**x**")
    assert mine.html == "" and mine.html_version == 0


def test_a_page_shows_the_stored_html_without_rendering_markdown(
    learner, conversation, monkeypatch
):
    reply = finished_reply(learner, conversation, "A *stored* reply")

    def no_rendering(text: str) -> str:
        raise AssertionError("rendered again")

    monkeypatch.setattr(frames, "render_markdown", no_rendering)
    body = frames.message_body(Message.objects.get(pk=reply.pk))
    assert "<em>stored</em>" in body


def test_html_from_another_renderer_version_is_rendered_again_but_not_written(
    learner, conversation, client
):
    reply = finished_reply(learner, conversation, "A *fresh* reply")
    Message.objects.filter(pk=reply.pk).update(html="<p>old</p>", html_version=0)

    client.force_login(learner)
    page = client.get(f"/c/{conversation.pk}/").content.decode()

    assert "<em>fresh</em>" in page and "<p>old</p>" not in page
    assert Message.objects.get(pk=reply.pk).html == "<p>old</p>"  # a GET only reads


def test_rerender_messages_stores_the_current_renderers_html(learner, conversation, capsys):
    reply = finished_reply(learner, conversation, "A *fresh* reply")
    Message.objects.filter(pk=reply.pk).update(html="<p>old</p>", html_version=0)

    call_command("rerender_messages")

    stored = Message.objects.get(pk=reply.pk)
    assert stored.html_version == RENDERER_VERSION and "<em>fresh</em>" in stored.html
    assert "rendered with renderer version" in capsys.readouterr().out
