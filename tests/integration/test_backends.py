"""The settings switch on real services: each case is a fresh process with its own environment."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/12"

# Cleared from the child's environment so only what a test passes decides the outcome.
# TESTING above all: settings treat TESTING=1 (or a loaded pytest) as test mode.
CLEARED = (
    "TESTING",
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "SQLITE_PATH",
    "TEST_DATABASE_NAME",
    "CHANNEL_LAYER_PREFIX",
    "DJANGO_SETTINGS_MODULE",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_PROXY_SSL_HEADER",
)

SETUP = """
import json, os
os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
import django
django.setup()
"""


def child_env(tmp_path: Path, **env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in CLEARED and not k.startswith("PYTEST")}
    return {**base, "VAR_DIR": str(tmp_path), "PYTHONWARNINGS": "ignore", **env}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def run_django(code: str, env: dict[str, str]) -> dict[str, Any]:
    """Run code after django.setup() in a new process; it prints one JSON line last."""
    result = run(["-c", SETUP + textwrap.dedent(code)], env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_database_url_uses_postgresql(tmp_path: Path) -> None:
    report = run_django(
        """
        from django.core.management import call_command
        from django.db import connection
        with connection.cursor() as cursor:
            cursor.execute("SELECT 40 + 2, current_database()")
            answer, name = cursor.fetchone()
        call_command("check", databases=["default"], verbosity=0)
        print(json.dumps({"vendor": connection.vendor, "answer": answer, "name": name}))
        """,
        child_env(tmp_path, TESTING="1", DATABASE_URL=POSTGRES_URL),
    )

    assert report == {"vendor": "postgresql", "answer": 42, "name": "test"}
    # Nothing was written next to the code: no SQLite file was made.
    assert not list(tmp_path.glob("*.sqlite3"))


def test_migrate_plan_runs_against_postgresql(tmp_path: Path) -> None:
    env = child_env(tmp_path, TESTING="1", DATABASE_URL=POSTGRES_URL)

    result = run(["manage.py", "migrate", "--plan"], env)

    assert result.returncode == 0, result.stderr[-3000:]
    assert "Planned operations" in result.stdout


def test_redis_url_uses_the_redis_channel_layer_and_cache(tmp_path: Path) -> None:
    prefix = f"practalk-test-{uuid.uuid4().hex[:12]}"
    report = run_django(
        """
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer
        from django.core.cache import caches
        cache = caches["default"]

        layer = get_channel_layer()

        async def round_trip():
            channel = await layer.new_channel("probe.")
            await layer.send(channel, {"type": "probe.ping", "n": 7})
            return await layer.receive(channel)

        message = async_to_sync(round_trip)()
        cache.set("probe", "pong", 30)
        cached = cache.get("probe")
        cache.delete("probe")
        print(json.dumps({
            "layer": type(layer).__name__,
            "message": message,
            "cache": type(cache).__name__,
            "cached": cached,
        }))
        """,
        child_env(tmp_path, TESTING="1", REDIS_URL=REDIS_URL, CHANNEL_LAYER_PREFIX=prefix),
    )

    assert report == {
        "layer": "PooledRedisChannelLayer",
        "message": {"type": "probe.ping", "n": 7},
        "cache": "ResilientRedisCache",
        "cached": "pong",
    }


def test_without_database_or_redis_sqlite_in_wal_mode_and_in_memory_layer(
    tmp_path: Path,
) -> None:
    report = run_django(
        """
        from channels.layers import get_channel_layer
        from django.core.cache import caches
        cache = caches["default"]
        from django.db import connection
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            (mode,) = cursor.fetchone()
        print(json.dumps({
            "vendor": connection.vendor,
            "name": str(connection.settings_dict["NAME"]),
            "journal_mode": mode,
            "layer": type(get_channel_layer()).__name__,
            "cache": type(cache).__name__,
        }))
        """,
        child_env(tmp_path, TESTING="1"),
    )

    assert report == {
        "vendor": "sqlite",
        "name": str(tmp_path / "practalk.sqlite3"),
        "journal_mode": "wal",
        "layer": "ThrottledInMemoryChannelLayer",
        "cache": "LocMemCache",
    }


def test_production_settings_refuse_to_load_without_secret_key(tmp_path: Path) -> None:
    result = run(
        ["-c", SETUP], child_env(tmp_path, DEBUG="0", ALLOWED_HOSTS="practalk.example.com")
    )

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr


@pytest.mark.parametrize("hosts", ["*", "practalk.example.com,*", ""])
def test_production_settings_refuse_wildcard_or_missing_allowed_hosts(
    tmp_path: Path, hosts: str
) -> None:
    env = child_env(tmp_path, DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS=hosts)

    result = run(["-c", SETUP], env)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "ALLOWED_HOSTS" in result.stderr


def test_production_settings_pass_the_deploy_check(tmp_path: Path) -> None:
    env = child_env(
        tmp_path,
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="practalk.example.com",
    )
    assert "TESTING" not in env

    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
