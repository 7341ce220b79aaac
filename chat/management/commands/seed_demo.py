"""Demo data for a fresh machine: coaches, two people, a public room. Safe to run twice."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User
from chat.classes import services as classes
from chat.coach.personas import PERSONA_EXTRAS, PERSONAS
from chat.models import Class, Conversation, Membership, Persona

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
