"""Demo data for a fresh machine: coaches, two people, a public room. Safe to run twice."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User
from chat.coach.personas import PERSONA_EXTRAS, PERSONAS
from chat.models import Conversation, Membership, Persona

DEMO_PASSWORD = "practalk-demo-2026"
DEMO_USERS = [
    ("learner@example.com", "Minji", User.Role.LEARNER),
    ("coach@example.com", "Coach Sam", User.Role.COACH),
]


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
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {Persona.objects.count()} coaches; sign in as "
                f"{DEMO_USERS[0][0]} / {DEMO_PASSWORD}"
            )
        )
