"""Database calls from async code on the pool (chat/dbasync.py): concurrent, each thread's
connection cared for, and the guarantees that used to come from one sync thread kept."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from chat import dbasync
from chat.coach import quota, sending
from chat.models import AIUsage, Message
from chat.practice import services as practice_services
from tests.pgscript import run_on_postgres

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def pool(settings):
    settings.DB_THREADS = 4
    dbasync.shutdown()  # a pool of this size, made on first use
    yield
    dbasync.shutdown()


def test_the_pool_runs_two_database_calls_at_once():
    barrier = threading.Barrier(2, timeout=5)

    def waits_for_the_other() -> str:
        barrier.wait()  # on one thread the first call would wait here for ever
        return threading.current_thread().name

    async def both() -> list[str]:
        return await asyncio.gather(
            dbasync.db_async(waits_for_the_other)(), dbasync.db_async(waits_for_the_other)()
        )

    names = async_to_sync(both)()

    assert len(set(names)) == 2 and all(n.startswith("db") for n in names)


def test_one_thread_or_an_in_memory_database_keeps_the_sync_thread(settings, monkeypatch):
    assert dbasync.pooled()
    settings.DB_THREADS = 1
    assert not dbasync.pooled()
    settings.DB_THREADS = 4
    monkeypatch.setitem(connection.settings_dict, "NAME", ":memory:")
    assert not dbasync.pooled()


def test_each_pool_thread_replaces_its_expired_connection():
    size = 4
    barrier = threading.Barrier(size, timeout=20)
    kept: list[object] = []  # every connection seen stays alive, so no id() is reused

    def touch(expire: bool) -> tuple[str, int]:
        barrier.wait()  # one call per thread: all `size` threads take one
        connection.ensure_connection()
        kept.append(connection.connection)
        seen = (threading.current_thread().name, id(connection.connection))
        if expire:
            connection.close_at = time.monotonic() - 1  # past CONN_MAX_AGE
        return seen

    async def round_(expire: bool) -> dict[str, int]:
        calls = [dbasync.db_async(touch)(expire) for _ in range(size)]
        return dict(await asyncio.gather(*calls))

    first = async_to_sync(round_)(True)
    second = async_to_sync(round_)(False)
    third = async_to_sync(round_)(False)

    assert set(first) == set(second) == set(third) and len(first) == size
    assert all(first[name] != second[name] for name in first)  # closed after, reopened
    assert second == third  # a live connection is kept (CONN_MAX_AGE)


def slow_counts(monkeypatch) -> list[str]:
    """Widen the window between counting today's replies and taking one; who counted."""
    count = quota.used_today
    threads: list[str] = []

    def slow(*args, **kwargs):
        used = count(*args, **kwargs)
        threads.append(threading.current_thread().name)
        time.sleep(0.05)
        return used

    monkeypatch.setattr(quota, "used_today", slow)
    return threads


def race_sends(user, conversations) -> list[sending.SendOutcome]:
    async def race() -> list[sending.SendOutcome]:
        return await asyncio.gather(
            *(
                dbasync.db_async(sending.send_message)(user, c, f"My answer {i}.")
                for i, c in enumerate(conversations)
            )
        )

    return async_to_sync(race)()


def test_two_pages_of_one_learner_racing_sends_spend_at_most_the_quota(
    make_user, persona, monkeypatch
):
    user = make_user(daily_ai_limit=1)
    pages = [practice_services.practice_start(user=user, persona=persona) for _ in range(2)]
    counted = slow_counts(monkeypatch)

    outcomes = race_sends(user, pages)

    assert len(counted) == 2 and all(name.startswith("db") for name in counted)
    opened = [o.exchange.reply for o in outcomes if o.exchange and o.exchange.reply]
    refused = [o for o in outcomes if o.exchange and o.exchange.quota_refused]
    assert len(opened) == 1 and len(refused) == 1
    assert AIUsage.objects.filter(user=user).count() == 1


def test_two_tabs_sending_at_once_open_one_reply_in_a_conversation(make_user, persona, monkeypatch):
    user = make_user(daily_ai_limit=5)
    page = practice_services.practice_start(user=user, persona=persona)
    slow_counts(monkeypatch)

    outcomes = race_sends(user, [page, page])

    assert sorted(o.cause for o in outcomes) == ["", "streaming"]
    streaming = Message.objects.filter(conversation=page, status=Message.Status.STREAMING)
    assert streaming.count() == 1
    assert AIUsage.objects.filter(user=user).count() == 1


POSTGRES_SENDS = """
from accounts.models import User
from chat import dbasync
from chat.coach import quota, sending
from chat.models import AIUsage, Message, Persona
from chat.practice import services

user = User.objects.create_user(email="racer@example.com", password="x", daily_ai_limit=1)
persona = Persona.objects.filter(is_active=True).first()
pages = [services.practice_start(user=user, persona=persona) for _ in range(3)]
count, counted = quota.used_today, []

def slow_count(*args, **kwargs):
    used = count(*args, **kwargs)
    counted.append(threading.current_thread().name)
    time.sleep(0.05)
    return used

quota.used_today = slow_count

async def race(conversations):
    return await asyncio.gather(*(
        dbasync.db_async(sending.send_message)(user, c, f"Answer {i}.")
        for i, c in enumerate(conversations)
    ))

two_pages = asyncio.run(race(pages[:2]))
user.daily_ai_limit = 5
user.save(update_fields=["daily_ai_limit"])
two_tabs = asyncio.run(race([pages[2], pages[2]]))
dbasync.shutdown()
print(json.dumps({
    "vendor": connection.vendor,
    "pooled": sorted(set(n[:2] for n in counted)),
    "replies": sorted(bool(o.exchange and o.exchange.reply) for o in two_pages),
    "tabs": sorted(o.cause for o in two_tabs),
    "streaming": Message.objects.filter(conversation=pages[2], status="streaming").count(),
    "rows": AIUsage.objects.filter(user=user).count(),
}))
"""


@pytest.mark.django_db(transaction=False)
def test_racing_sends_through_the_pool_on_postgresql_keep_the_quota_and_one_reply(tmp_path):
    # A fresh database of its own, so this run never meets another one's rows.
    report = run_on_postgres(POSTGRES_SENDS, tmp_path, DB_THREADS="4")
    # Two pages, one reply left: one opens a reply. Then two tabs of a third conversation
    # send at once: one opens a reply, the other is told the coach is still answering.
    assert report == {
        "vendor": "postgresql",
        "pooled": ["db"],
        "replies": [False, True],
        "tabs": ["", "streaming"],
        "streaming": 1,
        "rows": 2,
    }


POSTGRES_PIDS = """
from chat import dbasync

def backend_pid():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]

async def calls(n):
    return [await dbasync.db_async(backend_pid)() for _ in range(n)]

first = asyncio.run(calls(12))
time.sleep(1.3)  # past a 1-second thread age: the next call connects anew
later = asyncio.run(calls(1))
dbasync.shutdown()
print(json.dumps({"first": len(set(first)), "renewed": later[0] not in first,
                  "max_age": connection.settings_dict["CONN_MAX_AGE"]}))
"""


@pytest.mark.parametrize(("thread_age", "at_most", "at_least"), [("1", 2, 1), ("0", 12, 12)])
def test_a_pool_thread_keeps_its_postgresql_connection_for_its_age(
    tmp_path, thread_age, at_most, at_least
):
    # Without Django's connection pool (DB_POOL=0) CONN_MAX_AGE is 0 (HTTP requests connect
    # per request); the pool's two threads keep theirs for DB_THREAD_CONN_MAX_AGE, so 12
    # calls use 2 connections, not 12.
    report = run_on_postgres(
        POSTGRES_PIDS, tmp_path, DB_THREADS="2", DB_THREAD_CONN_MAX_AGE=thread_age, DB_POOL="0"
    )
    # At most one connection per pool thread while kept (which thread takes a call is the
    # executor's choice); a new one per call when not.
    assert at_least <= report["first"] <= at_most, report
    assert report["renewed"] and report["max_age"] == 0


POSTGRES_REQUEST_THREADS = """
from chat import dbasync

pids = []

def request():
    # As an ASGI request does: a thread of its own, its connection closed when it ends.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pids.append(cursor.fetchone()[0])
    connection.close()

for _ in range(12):
    thread = threading.Thread(target=request)
    thread.start()
    thread.join()

def socket_call():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]

async def socket_calls():
    return [await dbasync.db_async(socket_call)() for _ in range(12)]

sockets = asyncio.run(socket_calls())
dbasync.shutdown()
print(json.dumps({"pool": bool(connection.settings_dict["OPTIONS"].get("pool")),
                  "requests": len(set(pids)), "sockets": len(set(sockets)),
                  "max_age": connection.settings_dict["CONN_MAX_AGE"]}))
"""


@pytest.mark.parametrize(
    ("env", "pool", "at_most"), [({}, True, 2), ({"DB_POOL": "0"}, False, 12)], ids=["pool", "off"]
)
def test_requests_on_threads_of_their_own_share_the_pools_postgresql_connections(
    tmp_path, env, pool, at_most
):
    # Under ASGI every HTTP request runs on a new thread. With Django's pool (PostgreSQL's
    # default here) twelve of them one after another reuse its open connections instead of
    # connecting twelve times; the socket pool's threads take theirs from it too.
    report = run_on_postgres(POSTGRES_REQUEST_THREADS, tmp_path, DB_THREADS="2", **env)
    assert report["pool"] is pool and report["max_age"] == 0, report
    assert report["requests"] <= at_most and report["sockets"] <= 2, report
    if not pool:
        assert report["requests"] == 12  # a connect per request
