"""A live class for the class tests: the coach, a session and two learners who joined.

A class test module takes them all with `from tests.integration.classroom import *`, so they
(the autouse settings included) apply to that module only: `coach` means another thing in
other suites. One that needs the session running at question 1 overrides `class_running`;
other questions, `class_questions` (the module's own definition, after the import, wins).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache

from chat.classes import activity
from chat.classes import services as classes
from chat.models import ClassSession

__all__ = [
    "class_questions",
    "class_running",
    "class_settings",
    "coach",
    "joon",
    "minji",
    "session",
]
QUESTIONS = "Tell me about yourself.\nA time you failed?\nWhy this job?"


@pytest.fixture(autouse=True)
def class_settings(settings: Any) -> Any:
    """The direct activity path, quick dashboard batches, clean counters."""
    settings.ACTIVITY_REDIS_URL = ""
    settings.CLASS_DASHBOARD_BATCH_SECONDS = 0.05
    activity.reset_client()
    cache.clear()
    return settings


@pytest.fixture
def class_questions() -> str:
    return QUESTIONS


@pytest.fixture
def class_running() -> bool:
    """False: the session waits for the coach; True: it is at question 1."""
    return False


@pytest.fixture
def coach(make_user: Any) -> Any:
    return make_user(nickname="Coach Park", role="coach")


@pytest.fixture
def session(coach: Any, class_questions: str, class_running: bool) -> Iterator[ClassSession]:
    klass = classes.class_create(coach=coach, title="Interview basics", questions=class_questions)
    session = classes.session_start(klass=klass, by=coach)
    if class_running:
        session = classes.session_move(session_id=session.pk, by=coach, move="next")
    yield session
    activity.flush()  # the log's buffered writes land before the test database goes


def _joined(make_user: Any, session: ClassSession, nickname: str) -> Any:
    user = make_user(nickname=nickname)
    classes.session_join(session=session, user=user)
    return user


@pytest.fixture
def minji(make_user: Any, session: ClassSession) -> Any:
    return _joined(make_user, session, "Minji")


@pytest.fixture
def joon(make_user: Any, session: ClassSession) -> Any:
    return _joined(make_user, session, "Joon")
