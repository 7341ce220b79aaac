"""Demo data for a fresh machine: coaches, two people, a public room with a few messages, and a
finished practice conversation for the demo learner, so the first screen is not empty. Safe to
run twice."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User
from chat.coach.personas import PERSONAS
from chat.conversations import message_create, title_from_text
from chat.models import Conversation, Membership, Message, Persona

DEMO_PASSWORD = "practalk-demo-2026"
DEMO_USERS = [
    ("learner@example.com", "Minji", User.Role.LEARNER),
    ("coach@example.com", "Coach Sam", User.Role.COACH),
]


DEMO_ROOM_TALK = [
    (1, "Good morning, everyone! What are you practising this week?"),
    (0, "Job interviews. I have one on Friday, for a product designer role."),
    (1, "Nice. Try telling one story with the STAR shape: situation, task, action, result."),
    (0, "Thanks! I will try it with the coach first."),
]

DEMO_PRACTICE = [
    (
        "user",
        "I led the redesign of our sign-up flow. Drop-off was 40 %, so I interviewed ten "
        "users, found the confusing step, and we removed it. Drop-off fell to 25 % in a month.",
    ),
    (
        "assistant",
        "That is a clear story: **situation** (40 % drop-off), **action** (ten interviews, one "
        "step removed) and a measured **result**. Next time, say in one sentence what *your* "
        "task was before the actions.\n\nWhat was the hardest part of convincing the team?",
    ),
    (
        "user",
        "The engineers wanted to keep the step for fraud checks. I showed them the interview "
        "clips and we moved the check to after the first purchase.",
    ),
    (
        "assistant",
        "Good: you used evidence to change a mind, and found a way to keep what the others "
        "needed. That is a strong ending to this practice.",
    ),
]


def _seed_room_talk(room: Conversation, users: list[User]) -> None:
    """A few messages, so the demo room does not open empty."""
    if room.messages.filter(role=Message.Role.USER).exists():
        return
    for who, text in DEMO_ROOM_TALK:
        message_create(conversation=room, author=users[who], content=text)


def _seed_practice(learner: User) -> None:
    """A finished practice conversation the demo learner can open and read."""
    if Conversation.objects.filter(kind=Conversation.Kind.PRACTICE, owner=learner).exists():
        return
    persona = Persona.objects.filter(slug="interview-behavioural").first()
    conversation = Conversation.objects.create(
        kind=Conversation.Kind.PRACTICE,
        title=title_from_text(DEMO_PRACTICE[0][1]),
        persona=persona,
        owner=learner,
    )
    Membership.objects.create(conversation=conversation, user=learner, role=Membership.Role.OWNER)
    if persona and persona.opening_line:
        message_create(
            conversation=conversation,
            author=None,
            role=Message.Role.ASSISTANT,
            content=persona.opening_line,
            metadata={"opening": True},
        )
    for role, text in DEMO_PRACTICE:
        message_create(
            conversation=conversation,
            author=learner if role == "user" else None,
            role=role,
            content=text,
            metadata={} if role == "user" else {"model": "demo"},
        )


class Command(BaseCommand):
    help = "Load demo coaches, people and a room (idempotent)."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        for data in PERSONAS:
            Persona.objects.get_or_create(slug=data["slug"], defaults=data)
        users = []
        for email, nickname, role in DEMO_USERS:
            user = User.objects.filter(email=email).first()
            if user is None:
                user = User.objects.create_user(email, DEMO_PASSWORD, nickname=nickname, role=role)
            users.append(user)
        room = Conversation.objects.filter(kind="room", title="English lounge").first()
        if room is None:
            room = Conversation.objects.create(
                kind=Conversation.Kind.ROOM,
                title="English lounge",
                topic="Small talk for everyone. Mention @coach to ask the AI coach.",
                is_public=True,
                owner=users[1],
            )
        for user in users:
            Membership.objects.get_or_create(
                conversation=room,
                user=user,
                defaults={"role": "owner" if user == room.owner else "member"},
            )
        _seed_room_talk(room, users)
        _seed_practice(users[0])
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {Persona.objects.count()} coaches; sign in as "
                f"{DEMO_USERS[0][0]} / {DEMO_PASSWORD}"
            )
        )
