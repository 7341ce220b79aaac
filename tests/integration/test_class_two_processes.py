"""A live class over two daphne processes and Redis: the coach on one, learners on the other.

A fresh PostgreSQL database, Redis DB 15 with a key prefix and stream of its own, and the
activity consumer as its own process: the production shape, end to end.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_two_processes import Member
from tests.serverproc import ROOT, Cluster, DaphneServer, manage, postgres_redis_cluster

REDIS_URL = "redis://127.0.0.1:6379/15"

SETUP = """
import json
from django.test import Client
from accounts.models import User
from chat.classes import services as classes

def cookie(user):
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value

coach = User.objects.create_user(email="coach@two.test", nickname="Coach", role="coach")
a = User.objects.create_user(email="a@two.test", nickname="Ari")
b = User.objects.create_user(email="b@two.test", nickname="Bo")
klass = classes.class_create(coach=coach, title="Two", questions="One?\\nTwo?\\nThree?")
session = classes.session_start(klass=klass, by=coach)
for learner in (a, b):
    classes.session_join(session=session, user=learner)
print(json.dumps({"conv": str(session.conversation_id), "session": str(session.pk),
                  "coach": cookie(coach), "a": cookie(a), "b": cookie(b), "a_id": a.pk}))
"""

COUNT = """
import json
from chat.models import ActivityEvent
rows = ActivityEvent.objects.all()
print(json.dumps({"n": rows.count(), "unique": rows.values("event_id").distinct().count(),
                  "kinds": sorted(rows.values_list("kind", flat=True))}))
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Two daphnes on a fresh database and Redis, with the activity consumer as a process."""
    env = {"ACTIVITY_STREAM": "{prefix}:activity", "CLASS_DASHBOARD_BATCH_SECONDS": "0.05"}
    with postgres_redis_cluster(
        name="classes_2p", redis_url=REDIS_URL, env=env, setup=SETUP
    ) as made:
        consumer = subprocess.Popen(
            [sys.executable, "manage.py", "run_activity_consumer", "--name", "two-1"],
            cwd=ROOT,
            env=made.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield made
        finally:
            consumer.terminate()
            consumer.wait(10)


async def open_page(server: DaphneServer, conv: str, cookie: str) -> Member:
    import websockets

    ws = await websockets.connect(
        f"ws://127.0.0.1:{server.port}/ws/chat/{conv}/",
        origin=server.url,
        additional_headers={"Cookie": f"sessionid={cookie}"},
    )
    page = Member(ws)
    page.reader = asyncio.create_task(page._read())
    await page.send(action="resync", last_seq=0)
    await page.until("class-stage")
    return page


def stored(cluster: Cluster, n: int, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        out = manage("shell", "-c", COUNT, env=cluster.env)
        result = json.loads(out.strip().splitlines()[-1])
        if result["n"] >= n or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


@pytest.mark.asyncio
async def test_a_class_runs_across_two_processes(cluster: Cluster) -> None:
    one, two = cluster.servers
    d = cluster.data
    coach = await open_page(one, d["conv"], d["coach"])
    a = await open_page(two, d["conv"], d["a"])
    b = await open_page(two, d["conv"], d["b"])
    # The learners' pages opened on process two: the coach's dashboard on one shows them.
    await coach.until('data-online="true"')

    await coach.send(action="next")
    for page in (a, b):
        _at, html = await page.until("Question 1 of 3")
        assert 'data-state="running"' in html
    await a.send(action="answer", step=1, answer="I fixed the build.")
    _at, row = await coach.until('data-answered="true"')
    assert f'id="learner-{d["a_id"]}"' in row
    await b.send(action="raise_hand", note="across")
    _at, hand = await coach.until("hand-item")
    assert "across" in hand
    hand_id = hand.split('id="hand-', 1)[1].split('"', 1)[0]
    await coach.send(action="resolve_hand", hand=hand_id)
    await b.until('data-state="resolved"')
    # A learner's move is refused on the other process too.
    await a.send(action="next")
    await a.until("Only the coach")
    await coach.send(action="pause")
    await a.until('data-state="paused"')
    await coach.send(action="resume")
    await b.until('data-state="running"')
    await coach.send(action="end")
    await a.until('data-state="ended"')
    for page in (a, b, coach):
        await page.close()

    # join×2 (setup), start, step, answer, hand raised, resolved, pause, resume, end, leave×2
    result = stored(cluster, 12)
    assert result["n"] == result["unique"] == 12, result
    assert result["kinds"].count("leave") == 2
