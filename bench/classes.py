"""Part — a live class: one coach, N learners on phones (sockets), one or two processes.

Measured: the coach's step change reaching every learner (p50/p99 over learners × steps),
a raised hand reaching the coach's dashboard (p50/p99), the dashboard's frames per second
(and rows per frame) while every learner answers at once, and the activity log: events
stored per second and, after the run, every event the script caused stored exactly once.
N = 200 on one process (in-memory layer, direct activity writes), then split over two
daphne processes sharing Redis (DB 15, own prefix and stream) with the activity consumer
as its own process. Timings are reported, never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import people
from bench import wsclient as wc
from bench.harness import ROOT, AppServer, CpuMeter, Ctx
from bench.report import histogram, max_ms, pct_ms, record_seconds

# Own DB number per engineer on a shared Redis: BENCH_REDIS_DB (default 15).
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "15"))
QUESTIONS = [f"Question number {i}: tell me about a time you learned something." for i in range(12)]
ROW = re.compile(r'<tr id="learner-(\d+)"[^>]*data-answered="(true|false)"')


@dataclass
class Page:
    """One open class page: frames with their arrival times."""

    ws: Any
    frames: list[tuple[float, str]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        with contextlib.suppress(Exception):
            async for frame in self.ws:
                self.frames.append((time.perf_counter(), frame))
                self.arrived.set()

    def first_after(self, since: float, needle: str) -> float | None:
        for at, frame in self.frames:
            if at >= since and needle in frame:
                return at
        return None

    async def wait_for(self, since: float, needle: str, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            at = self.first_after(since, needle)
            if at is not None:
                return at
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), 0.2)
        return None


@dataclass
class Result:
    label: str
    n: int
    step_p50: float | None = None
    step_p99: float | None = None
    step_max: float | None = None
    step_missing: int = 0
    hand_p50: float | None = None
    hand_p99: float | None = None
    hands: int = 0
    hand_missing: int = 0
    dash_fps: float = 0.0
    dash_rows_per_frame: float = 0.0
    dash_all_answered_s: float | None = None
    events_expected: int = 0
    events_stored: int = 0
    events_unique: int = 0
    events_per_s: float = 0.0
    answer_events: int = 0
    server_cpu: float = 0.0
    problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    problems_log: list[str] = field(default_factory=list)  # what the activity path looked like


def _setup(n: int, label: str) -> tuple[people.Person, list[people.Person], str, str]:
    """A coach, n learners joined to a fresh session (through the services, as /join/ does)."""
    from accounts.models import User
    from chat.classes import activity
    from chat.classes import services as classes

    coach = people.make_people(1, f"coach-{label}")[0]
    User.objects.filter(pk=coach.user_id).update(role="coach")
    learners = people.make_people(n, f"learner-{label}")
    coach_user = User.objects.get(pk=coach.user_id)
    klass = classes.class_create(coach=coach_user, title=label, questions="\n".join(QUESTIONS))
    session = classes.session_start(klass=klass, by=coach_user)
    for user in User.objects.filter(pk__in=[p.user_id for p in learners]):
        classes.session_join(session=session, user=user)
    activity.flush()
    return coach, learners, str(session.conversation_id), str(session.pk)


def _stored(session_id: str) -> tuple[int, int]:
    from django.db import close_old_connections

    from chat.models import ActivityEvent

    close_old_connections()
    rows = ActivityEvent.objects.filter(session_id=session_id)
    return rows.count(), rows.values("event_id").distinct().count()


def _answers_stored(session_id: str) -> int:
    from django.db import close_old_connections

    from chat.models import ActivityEvent

    close_old_connections()
    return ActivityEvent.objects.filter(session_id=session_id, kind="answer").count()


async def _open(server: AppServer, conv: str, person: people.Person) -> Page:
    ws = await wc.open_socket(server.ws_url(conv), person, server.origin)
    page = Page(ws)
    page.reader = asyncio.create_task(page.read())
    await ws.send(wc.resync(0))
    return page


def _send(page: Page, **payload: Any) -> Any:
    return page.ws.send(json.dumps(payload))


async def _measure(
    ctx: Ctx, result: Result, servers: list[AppServer], conv: str, session_id: str,
    coach_p: people.Person, learner_ps: list[people.Person],
) -> None:  # fmt: skip
    quick = ctx.quick
    coach = await _open(servers[0], conv, coach_p)
    pages = await wc.gather_limited(
        [_open(servers[(i + 1) % len(servers)], conv, p) for i, p in enumerate(learner_ps)], 50
    )
    failed = [p for p in pages if isinstance(p, BaseException)]
    if failed:
        result.problems.append(f"{len(failed)} sockets failed: {failed[0]!r}")
    learners: list[Page] = [p for p in pages if not isinstance(p, BaseException)]
    ready = await asyncio.gather(*(p.wait_for(0, "class-stage", 30) for p in learners))
    if any(r is None for r in ready):
        result.problems.append(f"{sum(r is None for r in ready)} pages never synced")
    await asyncio.sleep(1.0)  # the join's dashboard batches go out
    meter = CpuMeter([s.proc for s in servers]).start()
    expected = 0  # activity events caused from here on (the joins were stored at set-up)
    expected += len(learners)  # each page's first open is not an event; leaves at the end are

    # 1. Step changes: the coach's "next" → the new question on every learner's page.
    hist = histogram()
    steps = 3 if quick else 8
    for step in range(1, steps + 1):
        sent = time.perf_counter()
        await _send(coach, action="next")
        arrivals = await asyncio.gather(
            *(p.wait_for(sent, f"Question {step} of", 10) for p in learners)
        )
        for at in arrivals:
            if at is None:
                result.step_missing += 1
            else:
                record_seconds(hist, at - sent)
        expected += 2 if step == 1 else 1
        await asyncio.sleep(0.3)
    result.step_p50, result.step_p99, result.step_max = (
        pct_ms(hist, 50), pct_ms(hist, 99), max_ms(hist)
    )  # fmt: skip

    # 2. Hands: a learner raises a hand → the hand item on the coach's dashboard.
    hist = histogram()
    raisers = learners[: (10 if quick else 40)]
    for page, person in zip(raisers, learner_ps, strict=False):
        sent = time.perf_counter()
        await _send(page, action="raise_hand", note="bench")
        at = await coach.wait_for(sent, f'data-user="{person.user_id}"', 5)
        if at is None:
            result.hand_missing += 1
        else:
            record_seconds(hist, at - sent)
        await asyncio.sleep(0.05)
    result.hands = len(raisers)
    result.hand_p50, result.hand_p99 = pct_ms(hist, 50), pct_ms(hist, 99)
    expected += len(raisers)

    # 3. Everyone answers at once, `rounds` times (answering again replaces the answer):
    # the dashboard's frames while the rows fill, and the answers' events until stored.
    rounds = 2 if quick else 5
    sent = time.perf_counter()
    for r in range(rounds):
        await asyncio.gather(
            *(
                _send(p, action="answer", step=steps, answer=f"Answer {r} of learner {i}.")
                for i, p in enumerate(learners)
            )
        )
    expected += len(learners) * rounds
    answered: set[str] = set()
    deadline = time.monotonic() + 30
    last_at = sent
    while len(answered) < len(learners) and time.monotonic() < deadline:
        for at, frame in coach.frames:
            if at < sent:
                continue
            for uid, flag in ROW.findall(frame):
                if flag == "true" and uid not in answered:
                    answered.add(uid)
                    last_at = max(last_at, at)
        await asyncio.sleep(0.1)
    stored_at = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if await asyncio.to_thread(_answers_stored, session_id) >= len(learners) * rounds:
            stored_at = time.perf_counter()
            break
        await asyncio.sleep(0.05)
    result.answer_events = len(learners) * rounds
    result.events_per_s = result.answer_events / (stored_at - sent) if stored_at else 0.0
    frames = [(at, f) for at, f in coach.frames if at >= sent and "dashboard-learner" in f]
    window = max(last_at - sent, 1e-3)
    rows = sum(len(ROW.findall(f)) for _at, f in frames)
    result.dash_fps = len(frames) / window
    result.dash_rows_per_frame = rows / len(frames) if frames else 0.0
    result.dash_all_answered_s = (last_at - sent) if len(answered) >= len(learners) else None
    if len(answered) < len(learners):
        missing = len(learners) - len(answered)
        result.problems.append(f"{missing} learners' answers never reached the dashboard")

    # 4. Pause, resume, end, and everyone leaves.
    for move in ("pause", "resume", "end"):
        await _send(coach, action=move)
        expected += 1
        await asyncio.sleep(0.2)
    await asyncio.gather(*(p.ws.close() for p in learners), return_exceptions=True)
    await coach.ws.close()
    meter.stop()
    result.server_cpu = meter.percent
    result.events_expected = result.n + expected  # the set-up's joins + the script


def _consumer(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "manage.py", "run_activity_consumer", "--name", "bench-1"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=out,
        )


def _stream_state(url: str, name: str) -> str:
    import redis

    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        length = client.xlen(name)
        groups = client.xinfo_groups(name) if length else []
    finally:
        client.close()
    pending = sum(g.get("pending", 0) for g in groups)
    lag = sum(g.get("lag") or 0 for g in groups)
    return f"stream {length} entries, {pending} pending, lag {lag}"


def _store_rate(n: int) -> float:
    """Events per second through the direct path's batched store (synthetic events)."""
    import uuid

    from django.utils import timezone

    from chat.classes import activity
    from chat.models import ClassSession

    session = ClassSession.objects.first()
    assert session is not None
    events = [
        {"event_id": str(uuid.uuid4()), "session": str(session.pk), "user": None,
         "kind": "answer", "step": 1, "data": {}, "at": timezone.now().isoformat()}
        for _ in range(n)
    ]  # fmt: skip
    started = time.perf_counter()
    for i in range(0, n, 100):
        activity.store(events[i : i + 100])
    return n / (time.perf_counter() - started)


def _run_one(
    ctx: Ctx, n: int, split: bool, env: dict[str, str] | None = None, run: int = 0
) -> Result:
    label = "2 processes + Redis" if split else "1 process"
    if env:
        label += " (" + ", ".join(f"{k}={v}" for k, v in env.items()) + ")"
    result = Result(label, n)
    tag = f"benchcls{os.getpid()}x{n}{'s' if split else ''}r{run}"
    coach, learners, conv, session_id = _setup(n, tag)
    extra: dict[str, str] = {"CLASS_DASHBOARD_BATCH_SECONDS": "0.2", **(env or {})}
    consumer = None
    consumer_log = ctx.env.dir / f"{tag}-consumer.log"
    if split:
        extra.update(
            REDIS_URL=f"redis://127.0.0.1:6379/{REDIS_DB}",
            CHANNEL_LAYER_PREFIX=tag,
            ACTIVITY_STREAM=f"{tag}:activity",
        )
        consumer = _consumer({**ctx.env.base_env, **extra}, consumer_log)
    servers = [ctx.env.start_app(ctx.app_env(**extra)) for _ in range(2 if split else 1)]
    try:
        asyncio.run(_measure(ctx, result, servers, conv, session_id, coach, learners))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            result.events_stored, result.events_unique = _stored(session_id)
            if result.events_stored >= result.events_expected:
                break
            time.sleep(0.2)
        if split:
            result.problems_log.append(_stream_state(extra["REDIS_URL"], extra["ACTIVITY_STREAM"]))
            with contextlib.suppress(OSError):
                retries = consumer_log.read_text(errors="replace").count("retrying")
                result.problems_log.append(f"consumer retried {retries} batches")
    finally:
        for server in servers:
            result.errors += server.errors()
        for server in servers:
            server.stop()
        ctx.env.servers.clear()
        if consumer is not None:
            consumer.terminate()
            with contextlib.suppress(Exception):
                consumer.wait(10)
        people.forget_connections()
        if split:
            _flush_redis(tag)
    return result


def _flush_redis(prefix: str) -> None:
    with contextlib.suppress(Exception):
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
        for key in list(client.scan_iter(match=f"*{prefix}*", count=1000)):
            client.delete(key)
        client.close()


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB, socket_timeout=2).ping())
    except Exception:
        return False


def run(ctx: Ctx) -> None:
    report = ctx.report
    report.section = "classes"
    n = 50 if ctx.quick else 200
    plans: list[tuple[bool, dict[str, str]]] = [(False, {})]
    plans += [(True, {})] if not ctx.quick and _redis_up() else []
    if os.environ.get("BENCH_CLASSES_RUNS"):
        # e.g. "1,2:CHANNEL_LAYER_READER=per-receive,2": one or two processes, each run with
        # its own extra environment (before/after runs interleaved in one sitting).
        plans = []
        for spec in os.environ["BENCH_CLASSES_RUNS"].split(","):
            procs, _colon, assignments = spec.strip().partition(":")
            env = dict(a.split("=", 1) for a in assignments.split(";") if a)
            plans.append((procs == "2", env))
    if not ctx.quick and not _redis_up():
        report.note("Redis is not answering: the two-process class run is skipped")
        plans = [(split, env) for split, env in plans if not split]
    layouts = ", ".join("2 processes" if s else "1 process" for s, _env in plans)
    print(f"[classes] a coach and {n} learners: {layouts}", flush=True)
    for run, (split, env) in enumerate(plans):
        result = _run_one(ctx, n, split, env, run)
        _report(ctx, result)
    rate = _store_rate(2000 if ctx.quick else 10000)
    report.add(
        "activity log: batched store, events per second (direct path, 100 a batch)",
        rate,
        "/s",
        digits=0,
    )


def _report(ctx: Ctx, r: Result) -> None:
    report = ctx.report
    where = f"N = {r.n}, {r.label}"
    print(
        f"  {where}: step p50 {r.step_p50} p99 {r.step_p99} ms; hand p50 {r.hand_p50} p99 "
        f"{r.hand_p99} ms; dashboard {r.dash_fps:.1f} frames/s ({r.dash_rows_per_frame:.1f} "
        f"rows/frame); events {r.events_stored}/{r.events_expected} ({r.events_unique} unique)",
        flush=True,
    )
    problems = list(r.problems)
    if r.problems_log:
        report.note(f"{where}: activity path after the run: " + "; ".join(r.problems_log))
    if r.errors:
        report.note(f"{where}: daphne logged {len(r.errors)} errors, e.g. {r.errors[0]}")
    if r.step_missing:
        problems.append(f"{r.step_missing} step changes never reached a learner")
    if r.hand_missing:
        problems.append(f"{r.hand_missing} hands never reached the dashboard")
    report.check(f"{where}: every learner followed every step, every hand reached the coach",
                 not problems, "; ".join(problems))  # fmt: skip
    report.check(
        f"{where}: activity log complete and exactly once",
        r.events_stored == r.events_unique == r.events_expected,
        f"{r.events_stored} stored, {r.events_unique} unique, {r.events_expected} expected",
    )
    report.add(
        f"{where}: coach's step change → every learner, p99 (p50 / max)", r.step_p99, "ms",
        note=f"p50 {r.step_p50 or 0:.0f} ms, max {r.step_max or 0:.0f} ms; "
        f"server CPU {r.server_cpu:.0f} %",
        target="p99 ≤ 300 ms",
        met=None if r.step_p99 is None else r.step_p99 <= 300,
    )  # fmt: skip
    report.add(
        f"{where}: raised hand → coach's dashboard, p99 (p50), {r.hands} hands", r.hand_p99, "ms",
        note=f"p50 {r.hand_p50 or 0:.0f} ms", target="p99 ≤ 200 ms",
        met=None if r.hand_p99 is None else r.hand_p99 <= 200,
    )  # fmt: skip
    report.add(
        f"{where}: dashboard frames per second while every learner answers", r.dash_fps, "/s",
        note=f"{r.dash_rows_per_frame:.1f} rows a frame; "
        + (f"every learner's answer shown after {r.dash_all_answered_s * 1000:.0f} ms"
           if r.dash_all_answered_s is not None else "not every learner's answer was shown"),
    )  # fmt: skip
    exact = r.events_stored == r.events_unique == r.events_expected
    report.add(
        f"{where}: activity events/s, {r.answer_events} answers sent at once until all stored",
        r.events_per_s, "/s", digits=0,
        note=f"run total {r.events_stored} events, "
        + ("none lost or doubled" if exact else "MISMATCH"),
    )  # fmt: skip
