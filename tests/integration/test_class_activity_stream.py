"""The activity log over a real Redis Stream: consumer group, ack after commit, crash recovery.

Redis DB 15 and a stream name of its own per run; the consumer is the real management
command in its own process, on the same (file) test database.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from chat.classes import activity, stream
from chat.classes import services as classes
from chat.models import ActivityEvent, ClassSession
from tests.serverproc import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def stream_settings(settings: Any) -> Iterator[Any]:
    """The stream path on DB 15 under a fresh stream name."""
    settings.ACTIVITY_REDIS_URL = REDIS_URL
    settings.ACTIVITY_STREAM = f"practalk-test:activity:{secrets.token_hex(4)}"
    activity.reset_client()
    yield settings
    activity.client().delete(settings.ACTIVITY_STREAM)
    activity.reset_client()


@pytest.fixture
def session(make_user: Any) -> ClassSession:
    coach = make_user(nickname="Coach", role="coach")
    klass = classes.class_create(coach=coach, title="Stream", questions="A?\nB?\nC?\nD?")
    return classes.session_start(klass=klass, by=coach)


def script(session: ClassSession, learners: list[Any], steps: range) -> int:
    """Run part of a session through the services; returns how many events it logged."""
    coach = session.klass.coach
    logged = 0
    for step in steps:
        classes.session_move(session_id=session.pk, by=coach, move="next")
        logged += 2 if step == 1 else 1  # start + step, then step
        for learner in learners:
            classes.answer_submit(session_id=session.pk, user=learner, step=step, text=f"A{step}")
            logged += 1
        hand = classes.hand_raise(session_id=session.pk, user=learners[0], note=f"Q{step}")
        classes.hand_resolve(session_id=session.pk, by=coach, hand_id=hand.pk)
        logged += 2
    return logged


def join(session: ClassSession, make_user: Any, n: int) -> list[Any]:
    learners = [make_user(nickname=f"L{i}") for i in range(n)]
    for learner in learners:
        classes.session_join(session=session, user=learner)
    return learners


def wait_for_rows(session: ClassSession, n: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = ActivityEvent.objects.filter(session=session).count()
        if count >= n:
            return count
        time.sleep(0.1)
    return count


def consumer_process(settings: Any, name: str) -> subprocess.Popen[bytes]:
    db = settings.DATABASES["default"]["NAME"]
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db}",
        "ACTIVITY_REDIS_URL": REDIS_URL,
        "ACTIVITY_STREAM": settings.ACTIVITY_STREAM,
        "TESTING": "1",
        "DEBUG": "0",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_activity_consumer", "--name", name, "--batch", "5"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_events_go_to_the_stream_and_the_consumer_stores_them_once(
    stream_settings: Any, session: ClassSession, make_user: Any
) -> None:
    learners = join(session, make_user, 2)
    logged = 2 + script(session, learners, range(1, 3))
    client = activity.client()
    assert client.xlen(stream_settings.ACTIVITY_STREAM) == logged
    assert ActivityEvent.objects.count() == 0  # nothing written on the live path
    stream.ensure_group(client)
    while stream.consume_batch(client, "t1", count=7, block_ms=50):
        pass
    assert ActivityEvent.objects.filter(session=session).count() == logged
    assert stream.lag(client)["pending"] == 0


def test_a_batch_stored_but_not_acked_is_stored_again_as_the_same_rows(
    stream_settings: Any, session: ClassSession, make_user: Any
) -> None:
    learners = join(session, make_user, 2)
    logged = 2 + script(session, learners, range(1, 2))
    client = activity.client()
    stream.ensure_group(client)

    class CrashBeforeAck:
        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

        def xack(self, *args: Any) -> None:
            raise ConnectionError("killed between the commit and the ack")

    with pytest.raises(ConnectionError):
        stream.consume_batch(CrashBeforeAck(), "t1", count=100, block_ms=50)
    assert ActivityEvent.objects.count() == logged
    assert stream.lag(client)["pending"] == logged
    # Restarted under its name, the consumer re-reads its unacked entries first.
    assert stream.consume_batch(client, "t1", count=100, block_ms=50) == logged
    assert ActivityEvent.objects.count() == logged
    assert stream.lag(client)["pending"] == 0


def test_another_consumer_takes_over_what_a_dead_one_left_unacked(
    stream_settings: Any, session: ClassSession, make_user: Any
) -> None:
    join(session, make_user, 3)
    client = activity.client()
    stream.ensure_group(client)
    client.xreadgroup(stream.GROUP, "dead", {stream_settings.ACTIVITY_STREAM: ">"}, count=100)
    time.sleep(0.05)
    assert stream.consume_batch(client, "alive", count=100, block_ms=50, claim_idle_ms=10) == 3
    assert ActivityEvent.objects.count() == 3


def test_the_consumer_process_killed_mid_session_loses_and_doubles_nothing(
    stream_settings: Any, session: ClassSession, make_user: Any
) -> None:
    learners = join(session, make_user, 3)
    logged = 3
    proc = consumer_process(stream_settings, "worker-1")
    try:
        logged += script(session, learners, range(1, 3))
        assert wait_for_rows(session, 4) >= 4  # it is storing
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        # The session goes on while no consumer runs; nothing waits for the ledger.
        logged += script(session, learners, range(3, 5))
        classes.session_move(session_id=session.pk, by=session.klass.coach, move="end")
        logged += 1
        assert ActivityEvent.objects.filter(session=session).count() < logged
        proc = consumer_process(stream_settings, "worker-1")
        assert wait_for_rows(session, logged) == logged
        time.sleep(0.5)  # anything stored twice would show now
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    rows = ActivityEvent.objects.filter(session=session)
    assert rows.count() == logged
    assert rows.values("event_id").distinct().count() == logged
    kinds = list(rows.values_list("kind", flat=True))
    assert kinds.count("answer") == 3 * 4 and kinds.count("step") == 4 and kinds.count("end") == 1
    assert stream.lag(activity.client())["pending"] == 0


def test_with_redis_down_events_are_written_directly(
    settings: Any, session: ClassSession, make_user: Any
) -> None:
    settings.ACTIVITY_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    activity.reset_client()
    try:
        join(session, make_user, 2)
        assert activity.path() == "direct"
        activity.flush()
        assert ActivityEvent.objects.filter(session=session).count() == 2
    finally:
        activity.reset_client()


@pytest.fixture
def direct_flusher(settings: Any, monkeypatch: Any) -> activity.DirectBuffer:
    """A fresh direct buffer (no Redis) whose flusher runs every 20 ms."""
    settings.ACTIVITY_REDIS_URL = ""
    settings.ACTIVITY_FLUSH_SECONDS = 0.02
    activity.reset_client()
    fresh = activity.DirectBuffer()
    monkeypatch.setattr(activity, "buffer", fresh)
    return fresh


def test_the_direct_flusher_goes_on_after_a_failure_of_its_own(
    direct_flusher: activity.DirectBuffer, session: ClassSession, make_user: Any, monkeypatch: Any
) -> None:
    failures = []

    def flaky() -> None:
        if not failures:
            failures.append(1)
            raise RuntimeError("the database went away for a moment")

    monkeypatch.setattr(activity, "close_old_connections", flaky)
    join(session, make_user, 1)  # starts the flusher; its first round fails, no event follows
    count = wait_for_rows(session, 1, timeout=5)
    assert failures and count == 1 and direct_flusher.pending() == 0
    assert direct_flusher._thread is not None and direct_flusher._thread.is_alive()
    activity.flush()


def test_an_idle_direct_flusher_leaves_the_database_alone(
    direct_flusher: activity.DirectBuffer, session: ClassSession, make_user: Any, monkeypatch: Any
) -> None:
    checks: list[int] = []
    real = activity.close_old_connections
    monkeypatch.setattr(activity, "close_old_connections", lambda: checks.append(1) or real())
    join(session, make_user, 1)  # starts the flusher, which stores this one event
    assert wait_for_rows(session, 1, timeout=5) == 1
    busy = len(checks)
    time.sleep(0.3)  # some fifteen idle rounds: checking a connection would open one
    assert busy >= 1 and len(checks) == busy


def test_redis_reachable_for_these_tests() -> None:
    assert redis.Redis.from_url(REDIS_URL).ping()
