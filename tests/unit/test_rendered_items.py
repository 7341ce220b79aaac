"""The page list's rendered items: rendered once per distinct input, never stale."""

from __future__ import annotations

import zoneinfo

import pytest
from django.utils import timezone, translation

from chat import conversations, frames
from chat.coach import feedback
from chat.models import Feedback, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def items() -> frames.RenderedItems:
    return frames.RenderedItems(size=100)


@pytest.fixture
def room_messages(room, owner, guest):
    conversations.message_create(conversation=room, author=owner, content="Hello <i>all</i>")
    conversations.message_create(conversation=room, author=guest, content="Hi!")
    return lambda: conversations.latest_messages(room)


def test_a_second_view_reuses_the_items_and_matches_a_fresh_render(items, room_messages):
    first = [items.html(m) for m in room_messages()]
    assert items.misses == len(first) and items.hits == 0
    again = [items.html(m) for m in room_messages()]
    assert items.hits == len(first)
    assert again == first == [frames.render_message(m) for m in room_messages()]
    assert "Hello &lt;i&gt;all&lt;/i&gt;" in first[-2]


def test_a_new_nickname_language_or_time_zone_is_a_new_item(items, room_messages, guest):
    before = items.html(room_messages()[-1])
    guest.nickname = "Renamed <b>"
    guest.save()
    renamed = items.html(room_messages()[-1])
    assert "Renamed &lt;b&gt;" in renamed and renamed != before

    new_york = zoneinfo.ZoneInfo("America/New_York")  # the default zone is Seoul's
    with timezone.override(new_york):
        there = items.html(room_messages()[-1])
    created = timezone.localtime(room_messages()[-1].created_at, new_york)
    assert f">{created:%H:%M}</time>" in there and there != renamed

    reply = conversations.message_create(
        conversation=room_messages()[0].conversation,
        author=None,
        role=Message.Role.ASSISTANT,
        content="A finished reply",
    )
    english = items.html(reply)
    with translation.override("ko"):
        korean = items.html(reply)
        assert korean == frames.render_message(reply)
    assert ">Copy</button>" in english and ">Copy</button>" not in korean
    assert items.hits == 0  # every one of these was rendered, none served from before


def test_a_finished_reply_is_kept_once_it_ends_but_not_while_it_grows(items, room, owner):
    reply = conversations.message_create(
        conversation=room,
        author=None,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        content="Growing **text**",
    )
    items.html(reply)
    items.html(reply)
    assert items.items == {} and items.hits == 0
    reply.status = Message.Status.COMPLETE
    reply.content = "Growing **text**, done."
    finished = items.html(reply)
    assert "<strong>text</strong>" in finished and "aria-busy" not in finished
    assert items.html(reply) == finished and items.hits == 1


def test_an_answer_with_its_card_is_kept_until_the_card_changes(items, make_user, persona):
    from chat.practice import services

    learner = make_user()
    conv = services.practice_start(user=learner, persona=persona)
    answer = conversations.message_create(conversation=conv, author=learner, content="Um, I led.")
    stored = feedback.feedback_record(message=answer, conversation=conv)

    def shown() -> Message:
        return next(m for m in conversations.latest_messages(conv) if m.pk == answer.pk)

    first = items.html(shown())
    assert 'data-testid="feedback"' in first and first == frames.render_message(shown())
    assert items.html(shown()) == first and items.hits == 1

    # The model's rubric arrives: the card is a new one, not the kept one.
    rubric = {axis: {"score": 4, "reason": "Clear."} for axis in feedback.RUBRIC_AXES}
    feedback.feedback_complete(
        feedback_id=stored.pk,
        rubric={
            **rubric,
            "strength": "You <led>.",
            "improvement": "Add a number.",
            "rewrite": "I led a team of four.",
            "corrections": [],
        },
        model="fake",
        metadata={},
    )
    rated = items.html(shown())
    assert (
        rated != first and "You &lt;led&gt;." in rated and rated == frames.render_message(shown())
    )
    # Staff edit the feedback in the admin (a plain save, no timestamp): a new card too.
    Feedback.objects.filter(pk=stored.pk).update(strength="Edited by staff.")
    assert "Edited by staff." in items.html(shown())
    assert items.hits == 1


def test_the_oldest_items_fall_out_past_the_size(room_messages):
    small = frames.RenderedItems(size=1)
    first, second = room_messages()[-2:]
    small.html(first)
    small.html(second)
    assert len(small.items) == 1
    small.html(second)
    small.html(first)
    assert (small.hits, small.misses) == (1, 3)


def test_size_zero_keeps_nothing(room_messages):
    off = frames.RenderedItems(size=0)
    for m in room_messages():
        assert off.html(m) == frames.render_message(m)
    assert off.items == {}


def test_a_re_rendered_reply_or_a_renamed_coach_is_a_new_item(items, make_user, persona):
    from chat.practice import services

    learner = make_user()
    conv = services.practice_start(user=learner, persona=persona)
    reply = conversations.message_create(
        conversation=conv, author=None, role=Message.Role.ASSISTANT, content="**Well** done."
    )
    conversations.store_html(reply)
    reply.save()
    (shown,) = [m for m in conversations.latest_messages(conv) if m.pk == reply.pk]
    first = items.html(shown)
    assert "<strong>Well</strong>" in first and persona.display_name in first

    # The stored HTML changed (a new renderer wrote it): the item follows it.
    reply.html = reply.html.replace("done.", "done!")
    reply.save(update_fields=["html"])
    (shown,) = [m for m in conversations.latest_messages(conv) if m.pk == reply.pk]
    assert "done!" in items.html(shown)

    # A finished reply's text changed with its HTML left behind (an older renderer's):
    # rendered from the text, not served from before.
    reply.content, reply.html_version = "**Well** done, really.", 0
    reply.save(update_fields=["content", "html_version"])
    (shown,) = [m for m in conversations.latest_messages(conv) if m.pk == reply.pk]
    assert "done, really." in items.html(shown)

    persona.name = "Coach <Kim>"
    persona.save(update_fields=["name"])
    fresh = type(conv).objects.select_related("persona").get(pk=conv.pk)
    (shown,) = [m for m in conversations.latest_messages(fresh) if m.pk == reply.pk]
    renamed = items.html(shown)
    assert "Coach &lt;Kim&gt;" in renamed and renamed == frames.render_message(shown)
    assert items.hits == 0
