"""Shared fixtures: people, conversations, the fake model server."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes.fake_openai import FakeOpenAIServer, Script

_counter = itertools.count(1)
PASSWORD = "Correct-Horse-42!"


@pytest.fixture
def make_user(db: None) -> Callable[..., object]:
    """Create a user: make_user(nickname=..., email=..., **fields)."""
    from accounts.models import User

    def make(**fields: object) -> User:
        n = next(_counter)
        fields.setdefault("email", f"person{n}@example.com")
        fields.setdefault("nickname", f"Person {n}")
        password = fields.pop("password", PASSWORD)
        return User.objects.create_user(password=password, **fields)

    return make


@pytest.fixture
def persona(db: None) -> object:
    """The behavioural-interview coach shipped by the data migration."""
    from chat.coach.personas import PERSONAS
    from chat.models import Persona

    # A transaction=True test flushes the tables, data-migration rows included: bring it back.
    data = next(p for p in PERSONAS if p["slug"] == "interview-behavioural")
    return Persona.objects.get_or_create(slug=data["slug"], defaults=data)[0]


# Where compilemessages must not look, as in the Makefile.
I18N_IGNORE = [".venv", "var", "staticfiles", "tests", "bench"]


@pytest.fixture(scope="session")
def compiled_messages() -> None:
    """The translations compiled (`make test` does it too; up-to-date files are skipped)."""
    import os

    from django.conf import settings
    from django.core.management import call_command
    from django.core.signals import setting_changed

    here = os.getcwd()
    os.chdir(settings.BASE_DIR)
    try:
        call_command("compilemessages", ignore_patterns=I18N_IGNORE, verbosity=0)
    finally:
        os.chdir(here)
    # Drop catalogues this process may have loaded before the files were compiled.
    setting_changed.send(
        sender=type(settings), setting="LOCALE_PATHS", value=settings.LOCALE_PATHS, enter=False
    )


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAIServer]:
    """A fake OpenAI-compatible server on loopback, in a background thread."""
    server = FakeOpenAIServer()
    server.start_in_thread()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    """The real hasher costs ~0.3 s a password; only the hashing tests would need it."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def owner(make_user: Callable[..., Any]) -> Any:
    """A room's owner."""
    return make_user(nickname="Owner Kim")


@pytest.fixture
def guest(make_user: Callable[..., Any]) -> Any:
    """Someone else."""
    return make_user(nickname="Guest Lee")


@pytest.fixture
def room(owner: Any, guest: Any) -> Any:
    """A public room of the owner's that the guest has joined."""
    from chat.rooms import services as rooms

    room = rooms.room_create(owner=owner, name="Small talk")
    rooms.room_join(user=guest, room=room)
    return room


def use_fake_model(settings: Any, fake: FakeOpenAIServer, **overrides: Any) -> FakeOpenAIServer:
    """Point the real openai SDK at the fake server (one retry, short timeouts), fresh script.

    `overrides` are more settings (AI_TIMEOUT_SECONDS=2, AI_DAILY_LIMIT=20, …).
    """
    settings.OPENAI_BASE_URL = fake.base_url
    settings.OPENAI_API_KEY = "test-key"
    settings.AI_MAX_RETRIES = 1
    for name, value in overrides.items():
        setattr(settings, name, value)
    fake.script = Script(tokens=20)
    fake.clear()
    return fake
