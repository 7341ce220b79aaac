"""Part 3 — one room, N members: delivery latency sender → every member, nothing lost.

N = 100, 500, 1,000 members on one daphne process (in-memory layer), then split across
two daphne processes sharing Redis (own DB number and prefix) and the SQLite file (WAL).
The sender posts ``seq=<n> t=<monotonic ns>`` at 1 and 10 messages/s; every member's
frames are parsed; the database's saved messages are the truth. Finally a ``@coach``
message streams an AI reply to every member of a 100-member room.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from bench import people
from bench import wsclient as wc
from bench.harness import AppServer, CpuMeter, Ctx, cpu_seconds, last_user_text
from bench.report import histogram, max_ms, pct_ms
from tests.fakes.fake_openai import reply_tokens

# Own DB number per engineer on a shared Redis: BENCH_REDIS_DB (default 14).
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "14"))
# The two-process layouts, in run order: "<kind>[:<reader>]", kind list|pubsub, reader (list
# only) shared|per-receive (CHANNEL_LAYER_READER). BENCH_FANOUT_LAYOUTS overrides; repeating
# one interleaves before/after runs in one sitting.
LAYOUTS = ("list:shared", "list:per-receive", "pubsub")
COACH_TOKENS = 60
COACH_DELAY = 0.02
COACH_SEQ = 9000


@dataclass
class Phase:
    rate: float
    first_seq: int
    count: int
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    missing: int = 0
    doubled: int = 0
    saved_problem: str = ""
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    drained: bool = True


@dataclass
class Coach:
    first_p50_ms: float | None = None
    first_p99_ms: float | None = None
    final_p50_ms: float | None = None
    final_p99_ms: float | None = None
    gap_p99_ms: float | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class Config:
    label: str
    n: int
    split: bool
    join_s: float = 0.0
    settled: bool = True
    phases: list[Phase] = field(default_factory=list)
    coach: Coach | None = None
    problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class Member:
    person: people.Person
    server: AppServer
    tracker: wc.Tracker
    ws: Any = None
    reader: asyncio.Task[None] | None = None


def _seqs_received(member: Member, seqs: range) -> tuple[int, int]:
    """(missing, doubled) deliveries of `seqs` on one member's socket."""
    counts = member.tracker.mark_counts
    missing = sum(1 for s in seqs if counts.get(s, 0) == 0)
    doubled = sum(counts.get(s, 0) - 1 for s in seqs if counts.get(s, 0) > 1)
    return missing, doubled


async def _wait_all(members: list[Member], seqs: range, timeout: float, stall: float = 5.0) -> bool:
    """Wait until every member has every message; give up at `timeout`, or after `stall`
    seconds in which no member received anything (what is missing then is lost)."""
    deadline = time.monotonic() + timeout
    last_total, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        missing = sum(_seqs_received(m, seqs)[0] for m in members)
        if missing == 0:
            return True
        total = sum(len(m.tracker.marks) for m in members)
        if total != last_total:
            last_total, last_change = total, time.monotonic()
        elif time.monotonic() - last_change > stall:
            return False
        await asyncio.sleep(0.1)
    return False


async def _settle(servers: list[AppServer], cap: float, busy: float = 15.0) -> bool:
    """Wait until every server is nearly idle for a second (the join storm is over)."""
    deadline = time.monotonic() + cap
    quiet_since: float | None = None
    last = [cpu_seconds(s.proc) for s in servers]
    t = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = [cpu_seconds(s.proc) for s in servers]
        t2 = time.monotonic()
        peak = max(100 * (b - a) / (t2 - t) for a, b in zip(last, now, strict=True))
        last, t = now, t2
        if peak < busy:
            quiet_since = quiet_since or t2
            if t2 - quiet_since >= 1.0:
                return True
        else:
            quiet_since = None
    return False


async def _phase(
    ctx: Ctx, config: Config, members: list[Member], sender: Member, phase: Phase, room: str
) -> None:
    seqs = range(phase.first_seq, phase.first_seq + phase.count)
    servers = {id(m.server): m.server for m in members}.values()
    server_cpu = CpuMeter([s.proc for s in servers]).start()
    client_cpu = CpuMeter([psutil.Process()]).start()
    start = time.monotonic() + 0.05
    for i, seq in enumerate(seqs):
        await asyncio.sleep(max(0.0, start + i / phase.rate - time.monotonic()))
        text, _t = wc.marked(seq)
        await sender.ws.send(wc.send(text))
    phase.drained = await _wait_all(members, seqs, timeout=30 if not ctx.quick else 10)
    server_cpu.stop()
    client_cpu.stop()
    phase.server_cpu = server_cpu.percent / max(1, len(servers))
    phase.client_cpu = client_cpu.percent
    hist = histogram()
    for m in members:
        missing, doubled = _seqs_received(m, seqs)
        phase.missing += missing
        phase.doubled += doubled
    for m in members:
        for seq, latency_ns in m.tracker.marks:
            if seq in seqs:
                hist.record_value(max(1, latency_ns // 1000))
    phase.p50_ms, phase.p99_ms, phase.max_ms = pct_ms(hist, 50), pct_ms(hist, 99), max_ms(hist)
    saved = [
        int(content.split()[0].removeprefix("seq="))
        for _seq, role, _status, content in await asyncio.to_thread(people.message_texts, room)
        if role == "user" and content.startswith("seq=")
    ]
    saved_here = sorted(s for s in saved if s in seqs)
    if saved_here != list(seqs):
        phase.saved_problem = f"database saved {len(saved_here)} of {phase.count} messages"


async def _coach(ctx: Ctx, members: list[Member], sender: Member) -> Coach:
    """An @coach message in the room: the reply streams to every member."""
    coach = Coach()
    ctx.fake.reset()
    directive = (
        f"[[fake:tokens={COACH_TOKENS},delay={COACH_DELAY},first_token_delay={COACH_DELAY}]]"
    )
    text, _t = wc.marked(COACH_SEQ, f"@coach {directive}")
    await sender.ws.send(wc.send(text))
    traces: list[wc.ReplyTrace] = []
    try:
        traces = list(await asyncio.gather(*(wc.next_reply(m.tracker, 30) for m in members)))
        await asyncio.wait_for(
            asyncio.gather(*(t.done.wait() for t in traces)), COACH_TOKENS * COACH_DELAY + 60
        )
    except TimeoutError:
        coach.problems.append("not every member saw the reply finish")
    records = [
        r
        for r in await asyncio.to_thread(ctx.fake.records)
        if r["path"].endswith("/chat/completions") and f"seq={COACH_SEQ} " in last_user_text(r)
    ]
    if not records:
        coach.problems.append("the model never got the @coach request")
        return coach
    record = records[-1]
    first, final, gaps = histogram(), histogram(), histogram()
    expected = "".join(reply_tokens(COACH_TOKENS))
    for trace in traces:
        if trace.first_token_at is not None and record.get("first_token_at"):
            first.record_value(
                max(1, round((trace.first_token_at - record["first_token_at"]) * 1e6))
            )
        if trace.final_at is not None and record.get("finished_at"):
            final.record_value(max(1, round((trace.final_at - record["finished_at"]) * 1e6)))
        for gap in trace.gaps():
            gaps.record_value(max(1, round(gap * 1e6)))
    coach.first_p50_ms, coach.first_p99_ms = pct_ms(first, 50), pct_ms(first, 99)
    coach.final_p50_ms, coach.final_p99_ms = pct_ms(final, 50), pct_ms(final, 99)
    coach.gap_p99_ms = pct_ms(gaps, 99)
    if traces:
        status, content, metadata = await asyncio.to_thread(
            people.message_row, traces[0].message_id
        )
        problems: set[str] = set()
        for trace in traces:
            problems.update(trace.check(status, content, expected, metadata.get("frames")))
        coach.problems += sorted(problems)
    return coach


async def _run_config(
    ctx: Ctx,
    config: Config,
    servers: list[AppServer],
    everyone: list[people.Person],
    room: str,
    with_coach: bool,
) -> None:
    members = [Member(p, servers[i % len(servers)], wc.Tracker()) for i, p in enumerate(everyone)]
    sender = members[0]
    started = time.monotonic()
    sockets = await wc.gather_limited(
        [wc.open_socket(m.server.ws_url(room), m.person, m.server.origin) for m in members], 50
    )
    failed = [s for s in sockets if isinstance(s, BaseException)]
    if failed:
        config.problems.append(f"{len(failed)} of {len(members)} sockets failed: {failed[0]!r}")
    members = [
        m for m, ws in zip(members, sockets, strict=True) if not isinstance(ws, BaseException)
    ]
    for m, ws in zip(
        members, [s for s in sockets if not isinstance(s, BaseException)], strict=True
    ):
        m.ws = ws
        m.reader = asyncio.create_task(wc.read_into(ws, m.tracker))
    try:
        # Joined = the app registered every socket and every page resynced, and the
        # servers went quiet again (each join announces presence to the whole room).
        cap = 30 if ctx.quick else (100 if config.n >= 1000 else 60)
        deadline = time.monotonic() + cap
        while time.monotonic() < deadline:
            if await asyncio.to_thread(people.connections_open, [room]) >= len(members):
                break
            await asyncio.sleep(0.2)
        sent = await asyncio.gather(
            *(m.ws.send(wc.resync(0)) for m in members), return_exceptions=True
        )
        if any(isinstance(r, BaseException) for r in sent):
            config.problems.append(
                f"{sum(isinstance(r, BaseException) for r in sent)} sockets were closed "
                "before they could resync"
            )
        config.settled = await _settle(servers, max(5.0, deadline - time.monotonic()))
        config.join_s = time.monotonic() - started
        if not config.settled:
            config.problems.append(f"the join had not settled after {config.join_s:.0f} s")
        if sender.tracker.closed.is_set():
            # The server dropped the sender's socket in the join storm: it comes back, as a
            # page would, so the phases can still measure everyone else.
            config.problems.append(f"the sender's socket was closed ({sender.tracker.close_code})")
            sender.tracker = wc.Tracker()
            sender.ws = await wc.open_socket(
                sender.server.ws_url(room), sender.person, sender.server.origin
            )
            sender.reader = asyncio.create_task(wc.read_into(sender.ws, sender.tracker))
            await sender.ws.send(wc.resync(0))
            await asyncio.sleep(1)
        text, _t = wc.marked(0)
        await sender.ws.send(wc.send(text))
        if not await _wait_all(members, range(0, 1), timeout=20, stall=10):
            config.problems.append("warm-up message did not reach every member")
        plan = [(1.0, 2), (10.0, 5)] if ctx.quick else [(1.0, 10), (10.0, 50)]
        first = 1
        for rate, count in plan:
            phase = Phase(rate, first, count)
            first += 1000
            await _phase(ctx, config, members, sender, phase, room)
            config.phases.append(phase)
            print(
                f"  {config.label} N={config.n} {rate:g} msg/s: p50 {phase.p50_ms} p99 "
                f"{phase.p99_ms} max {phase.max_ms} ms, missing {phase.missing}, "
                f"doubled {phase.doubled}, server CPU {phase.server_cpu:.0f} %/process, "
                f"client CPU {phase.client_cpu:.0f} %",
                flush=True,
            )
        if with_coach:
            config.coach = await _coach(ctx, members, sender)
    except Exception as exc:  # the servers gave way: report what was measured, go on
        config.problems.append(f"measurement stopped: {type(exc).__name__}: {exc}")
    finally:
        closed = [m.tracker.close_code for m in members if m.tracker.closed.is_set()]
        if closed:
            codes = ", ".join(f"{c}×{closed.count(c)}" for c in sorted(set(closed), key=str))
            config.problems.append(f"the server closed {len(closed)} sockets (codes {codes})")
        for server in servers:
            config.errors += server.errors()
            server.stop(kill=True)
        for m in members:
            if m.reader is not None:
                m.reader.cancel()
        await asyncio.gather(
            *(m.ws.close() for m in members if m.ws is not None), return_exceptions=True
        )


def _flush_redis(prefix: str) -> None:
    with contextlib.suppress(Exception):
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
        client.close()


def _redis_up() -> bool:
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB, socket_timeout=2)
        ok = bool(client.ping())
        client.close()
        return ok
    except Exception:
        return False


def run(ctx: Ctx) -> None:
    report = ctx.report
    report.section = "3 fan-out"
    sizes = [20] if ctx.quick else [100, 1000, 500]
    if os.environ.get("BENCH_FANOUT_SIZES"):  # e.g. "1000": only the sizes asked for
        sizes = [int(n) for n in os.environ["BENCH_FANOUT_SIZES"].split(",")]
    wanted = os.environ.get("BENCH_FANOUT_LAYOUTS", "")
    split_layouts = tuple(x.strip() for x in wanted.split(",") if x.strip()) or LAYOUTS
    one_process = os.environ.get("BENCH_FANOUT_ONE_PROCESS", "1") != "0"
    # The last part: it gets what is left of the run's budget.
    deadline = time.monotonic() + max(20.0, ctx.budget.left - 10)
    redis = _redis_up()
    if not redis:
        report.note("Redis at 127.0.0.1:6379 is not answering: the two-process runs are skipped")
    # Both layouts at each size, the headline sizes (100 with @coach, 1,000) first.
    layouts: tuple[tuple[bool, str], ...] = ((False, ""),) if one_process else ()
    if redis:
        layouts += tuple((True, layout) for layout in split_layouts)
    plans = [(n, split, kind) for n in sizes for split, kind in layouts]
    print(f"[3] fan-out: N = {sizes}, one process then two over Redis", flush=True)
    everyone = people.make_people(max(sizes), "member")
    configs: list[Config] = []
    for n, split, kind in plans:
        estimate = (10 if ctx.quick else 30) + n * (0.13 if n >= 1000 else 0.06)
        label = f"2 processes + Redis ({kind} layer)" if split else "1 process"
        kind, _colon, reader = kind.partition(":")
        if time.monotonic() + estimate > deadline:
            report.note(f"N = {n} ({label}) skipped: time budget")
            continue
        config = Config(label, n, split)
        room = people.make_room(everyone[0], everyone[1:n], title=f"fan-out {n}")
        prefix = f"benchfan{os.getpid()}x{n}x{len(configs)}"
        extra = (
            {
                "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
                "CHANNEL_LAYER_PREFIX": prefix,
                "CHANNEL_LAYER_KIND": kind,
                "CHANNEL_LAYER_READER": reader or "shared",
            }
            if split
            else {}
        )
        servers = [ctx.env.start_app(ctx.app_env(**extra)) for _ in range(2 if split else 1)]
        try:
            asyncio.run(
                _run_config(ctx, config, servers, everyone[:n], room, with_coach=n == min(sizes))
            )
        finally:
            for server in servers:
                server.stop(kill=True)
            ctx.env.servers.clear()
            people.forget_connections()
            if split:
                _flush_redis(prefix)
        configs.append(config)
        _report_config(ctx, config)


def _report_config(ctx: Ctx, config: Config) -> None:
    report = ctx.report
    where = f"N = {config.n:,}, {config.label}"
    problems = list(config.problems)
    for phase in config.phases:
        if phase.missing or phase.doubled or phase.saved_problem:
            problems.append(
                f"{phase.rate:g} msg/s: {phase.missing} deliveries missing, "
                f"{phase.doubled} doubled {phase.saved_problem}".strip()
            )
    report.check(
        f"{where}: every member received every saved message exactly once",
        not problems,
        "; ".join(problems),
    )
    if config.errors:
        report.note(f"{where}: daphne logged {len(config.errors)} errors, e.g. {config.errors[0]}")
    report.add(
        f"{where}: time for all members to join (until the servers are idle again)",
        config.join_s,
        "s",
        note="" if config.settled else "still busy: cut off",
    )
    for phase in config.phases:
        target = ""
        met = None
        if phase.rate == 1.0 and config.n >= 1000:
            target = "p99 ≤ 250 ms, nothing lost"
            met = (
                phase.p99_ms is not None
                and phase.p99_ms <= 250
                and not phase.missing
                and not phase.doubled
            )
        report.add(
            f"{where}, {phase.rate:g} msg/s: delivery p99 (p50 / max)",
            phase.p99_ms,
            "ms",
            note=f"p50 {phase.p50_ms or 0:.0f} ms, max {phase.max_ms or 0:.0f} ms; "
            f"server CPU {phase.server_cpu:.0f} %" + (", not drained" if not phase.drained else ""),
            target=target,
            met=met,
            digits=0,
        )
        if phase.client_cpu > 90:
            report.note(
                f"{where}, {phase.rate:g} msg/s: load client core {phase.client_cpu:.0f} % busy "
                "(latency includes client queueing)"
            )
    coach = config.coach
    if coach is not None:
        report.check(
            f"{where}: @coach reply reached every member whole",
            not coach.problems,
            "; ".join(coach.problems[:4]),
        )
        report.add(
            f"{where}: @coach reply, model's first token → each member p99",
            coach.first_p99_ms,
            "ms",
            note=f"p50 {coach.first_p50_ms or 0:.1f} ms; model end → final frame p99 "
            f"{coach.final_p99_ms or 0:.0f} ms; fragment gap p99 {coach.gap_p99_ms or 0:.0f} ms",
            digits=1,
        )
