"""The demo data: a newcomer's first screen has a conversation and a room with people in it."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from accounts.models import User
from chat.models import Conversation, Message
from chat.practice import selectors

pytestmark = pytest.mark.django_db


def test_the_demo_learner_has_a_finished_practice_and_a_lively_room():
    call_command("seed_demo", verbosity=0)
    learner = User.objects.get(email="learner@example.com")

    (day,) = selectors.practice_history(learner)
    (practice,) = day.conversations
    assert practice.state == "your-turn" and practice.snippet
    assert "·" not in practice.title  # titled from its first answer, not a date
    room = Conversation.objects.get(kind="room", title="English lounge")
    said = room.messages.filter(role=Message.Role.USER)
    assert said.count() >= 3
    assert {m.author_id for m in said} == set(room.memberships.values_list("user_id", flat=True))


def test_seeding_twice_adds_nothing():
    call_command("seed_demo", verbosity=0)
    counts = (Conversation.objects.count(), Message.objects.count())

    call_command("seed_demo", verbosity=0)

    assert (Conversation.objects.count(), Message.objects.count()) == counts
