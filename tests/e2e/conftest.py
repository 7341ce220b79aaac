"""Browser tests: Chromium (Debian's where present) against the real app under daphne."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.serverproc import DaphneServer

# Sync Playwright runs an event loop in this thread; ORM calls from tests are still safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# Every server started here writes its e-mails to files, where helpers.signup reads the code.
os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.filebased.EmailBackend"
os.environ["EMAIL_FILE_PATH"] = tempfile.mkdtemp(prefix="practalk-e2e-mail-")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    args = {**browser_type_launch_args, "args": CHROMIUM_ARGS}
    chromium = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
    )
    if chromium:
        args["executable_path"] = chromium
    return args


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    """English pages whatever the machine's locale: these tests read English text.

    The Korean interface has its own tests (test_korean.py), in contexts of their own.
    """
    return {**browser_context_args, "locale": "en-US"}


def _server_env(fake_openai: Any, **extra: str) -> dict[str, str]:
    from django.db import connection

    env = {
        "SQLITE_PATH": str(connection.settings_dict["NAME"]),
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": "test-key",
        "AI_TIMEOUT_SECONDS": "5",
        "AI_MAX_RETRIES": "1",
        "AI_DAILY_LIMIT": "5",
        "MESSAGES_PER_10S": "30",
    }
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment: None, django_db_blocker: Any) -> Iterator[None]:
    """Always create the test database: the browser tests reach it only through the server.

    pytest-django creates it only for tests that ask for `db`, and no browser test does.
    """
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0)


@pytest.fixture(scope="session")
def server(
    compiled_messages: None, django_db_setup: None, django_db_blocker: Any, fake_openai: Any
) -> Iterator[DaphneServer]:
    """The app with the fake OpenAI-compatible model behind it."""
    srv = DaphneServer(_server_env(fake_openai)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def offline_server(
    compiled_messages: None, django_db_setup: None, fake_openai: Any
) -> Iterator[DaphneServer]:
    """The app with no model configured: the offline coach."""
    env = _server_env(
        fake_openai, OPENAI_BASE_URL="", OPENAI_API_KEY="", OFFLINE_TOKEN_DELAY="0.05"
    )
    srv = DaphneServer(env).start()
    yield srv
    srv.stop()


@pytest.fixture
def db_access(django_db_blocker: Any) -> Iterator[None]:
    """Read the database the server writes (data committed by the server process)."""
    with django_db_blocker.unblock():
        yield
