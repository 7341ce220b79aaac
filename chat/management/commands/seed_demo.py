"""Demo data for a fresh machine: coaches, two people, a public room with a few messages, and a
finished practice conversation for the demo learner, so the first screen is not empty. Safe to
run twice."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User
from chat.classes import services as classes
from chat.coach.personas import PERSONA_EXTRAS, PERSONAS
from chat.conversations import message_create, title_from_text
from chat.models import Class, Conversation, Membership, Message, Persona

DEMO_PASSWORD = "practalk-demo-2026"
DEMO_USERS = [
    ("learner@example.com", "Minji", User.Role.LEARNER),
    ("coach@example.com", "Coach Sam", User.Role.COACH),
    ("learner2@example.com", "Joon", User.Role.LEARNER),
]
DEMO_CLASS = "Interview basics (demo)"
DEMO_QUESTIONS = [
    "Tell me about yourself.",
    "Describe a time you solved a difficult problem at work.",
    "Tell me about a time you disagreed with a teammate.",
]
DEMO_ANSWERS = {
    "Minji": [
        "I am a junior developer. Um, I like building things that people use every day.",
        "Last year our checkout page was slow. I was asked to fix it, so I profiled the queries "
        "and added an index. As a result the page loaded in one second instead of four.",
        "We kind of disagreed about the design, so we talked and it was fine.",
    ],
    "Joon": [
        "I studied business and I now work in customer support.",
        "Our team had too many tickets, we made a new process and it got better.",
    ],
}


DEMO_ROOM_TALK = [
    (1, "Good morning, everyone! What are you practising this week?"),
    (0, "Job interviews. I have one on Friday, for a product designer role."),
    (1, "Nice. Try telling one story with the STAR shape: situation, task, action, result."),
    (0, "Thanks! I will try it with the coach first."),
    (2, "Hi, I am Joon. Mine is in English at a hospital, so I practise with the medical coach."),
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
            persona, created = Persona.objects.get_or_create(slug=data["slug"], defaults=data)
            extras = PERSONA_EXTRAS.get(persona.slug, {})
            # Fill only what staff left empty: a repeated seed never undoes an admin's edit.
            missing = {
                k: v for k, v in extras.items() if created or getattr(persona, k) in ("", None)
            }
            if missing:
                Persona.objects.filter(pk=persona.pk).update(**missing)
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
        self._demo_class(coach=users[1], learners=[users[0], users[2]])
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {Persona.objects.count()} coaches; sign in as "
                f"{DEMO_USERS[0][0]} / {DEMO_PASSWORD}"
            )
        )

    def _demo_class(self, *, coach: User, learners: list[User]) -> None:
        """A class of the demo coach's with one finished session, so its report has data."""
        if Class.objects.filter(coach=coach, title=DEMO_CLASS).exists():
            return
        klass = classes.class_create(
            coach=coach,
            title=DEMO_CLASS,
            description="Three behavioural questions, answered live from phones.",
            questions="\n".join(DEMO_QUESTIONS),
            seconds_per_question=120,
        )
        session = classes.session_start(klass=klass, by=coach)
        for learner in learners:
            classes.session_join(session=session, user=learner)
        for step in range(1, len(DEMO_QUESTIONS) + 1):
            classes.session_move(session_id=session.pk, by=coach, move="next")
            for learner in learners:
                answers = DEMO_ANSWERS.get(learner.nickname, [])
                if step <= len(answers):
                    classes.answer_submit(
                        session_id=session.pk, user=learner, step=step, text=answers[step - 1]
                    )
            if step == 2:
                hand = classes.hand_raise(
                    session_id=session.pk, user=learners[-1], note="Is my example specific enough?"
                )
                classes.hand_resolve(session_id=session.pk, by=coach, hand_id=hand.pk)
        classes.session_move(session_id=session.pk, by=coach, move="end")
