"""Part 1 — one learner's stream: throughput, CPU per token, send → model, first-token latency.

Compared, in the same run, with the bare websockets baseline (bench/baseline.py) reading
the same fake model, and with the app's one-frame-per-token mode (STREAM_FLUSH_INTERVAL=0).
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect

from bench import people
from bench import wsclient as wc
from bench.harness import Ctx, cpu_seconds, last_user_text, start_baseline, stop_process
from bench.report import histogram, pct_ms, record_seconds
from tests.fakes.fake_openai import reply_tokens

T_RE = re.compile(r"seq=\d+ t=(\d+)")
SHORT_TOKENS = 3
MODEL_DELAY = 0.02
# The model at 20 ms/token, the first token included: the send path has finished by then,
# so the first-token figure is the token path alone (fake's write → the client's frame).
SHORT_DIRECTIVE = (
    f"[[fake:tokens={SHORT_TOKENS},delay={MODEL_DELAY},first_token_delay={MODEL_DELAY}]]"
)


@dataclass
class Sizes:
    tokens: int  # long reply, model at unlimited speed
    reps: int  # long replies per configuration (median taken)
    sends: int  # short replies for the latency percentiles


@dataclass
class Outcome:
    """One configuration's numbers."""

    tokens_per_s: list[float] = field(default_factory=list)
    cpu_per_token_us: list[float] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    # per short send: (monotonic send time, mark t ns, first token at the client)
    sends: list[tuple[float, int, float | None]] = field(default_factory=list)
    to_model_ms: list[float] = field(default_factory=list)
    first_token_added_ms: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    repaired: int = 0  # token frames the layer dropped that a snapshot made good
    frames_sent: int = 0

    @property
    def tps(self) -> float | None:
        return statistics.median(self.tokens_per_s) if self.tokens_per_s else None

    @property
    def cpu_us(self) -> float | None:
        return statistics.median(self.cpu_per_token_us) if self.cpu_per_token_us else None


def _match_fake(ctx: Ctx, outcome: Outcome) -> None:
    """Join client send times with the fake model's arrival and first-token times."""
    by_mark: dict[int, dict[str, Any]] = {}
    for record in ctx.fake.records():
        if not record["path"].endswith("/chat/completions"):
            continue
        found = T_RE.search(last_user_text(record))
        # The reply's request arrives first; the answer's rubric (and title) requests
        # quote the same text later and must not overwrite it.
        if found and int(found.group(1)) not in by_mark:
            by_mark[int(found.group(1))] = record
    for sent_at, mark, first_at in outcome.sends:
        record = by_mark.get(mark)
        if record is None:
            outcome.problems.append(f"send {mark} never reached the model")
            continue
        outcome.to_model_ms.append((record["arrived_at"] - sent_at) * 1000)
        if first_at is not None and record.get("first_token_at") is not None:
            outcome.first_token_added_ms.append((first_at - record["first_token_at"]) * 1000)
    ctx.fake.reset()


def _percentiles(values_ms: list[float]) -> tuple[float | None, float | None]:
    hist = histogram()
    for v in values_ms:
        record_seconds(hist, v / 1000)
    return pct_ms(hist, 50), pct_ms(hist, 99)


# ---------------------------------------------------------------------------- the app


async def _app_session(
    ctx: Ctx,
    url: str,
    origin: str,
    person: people.Person,
    proc: psutil.Process,
    sizes: Sizes,
    *,
    latency: bool,
) -> tuple[Outcome, list[tuple[wc.ReplyTrace, str]]]:
    outcome = Outcome()
    traces: list[tuple[wc.ReplyTrace, str]] = []
    tracker = wc.Tracker()
    ws = await wc.open_socket(url, person, origin)
    reader = asyncio.create_task(wc.read_into(ws, tracker))
    try:
        await ws.send(wc.resync(0))
        await asyncio.sleep(0.2)
        seq = 0
        long_text = "".join(reply_tokens(sizes.tokens))
        for _ in range(sizes.reps):
            seq += 1
            text, _t = wc.marked(seq, f"[[fake:tokens={sizes.tokens},delay=0]]")
            cpu0 = cpu_seconds(proc)
            sent = time.monotonic()
            await ws.send(wc.send(text))
            trace = await wc.next_reply(tracker, 30)
            await asyncio.wait_for(trace.done.wait(), 120)
            assert trace.final_at is not None
            await asyncio.sleep(0.1)  # let the server finish its bookkeeping for this reply
            cpu = cpu_seconds(proc) - cpu0
            outcome.tokens_per_s.append(sizes.tokens / (trace.final_at - sent))
            outcome.cpu_per_token_us.append(cpu / sizes.tokens * 1e6)
            outcome.frames.append(trace.token_frames + 1)
            traces.append((trace, long_text))
        if latency:
            short_text = "".join(reply_tokens(SHORT_TOKENS))
            for _ in range(sizes.sends):
                seq += 1
                text, mark = wc.marked(seq, SHORT_DIRECTIVE)
                sent = time.monotonic()
                await ws.send(wc.send(text))
                trace = await wc.next_reply(tracker, 30)
                await asyncio.wait_for(trace.done.wait(), 30)
                outcome.sends.append((sent, mark, trace.first_token_at))
                traces.append((trace, short_text))
                await asyncio.sleep(0.03)
    finally:
        await ws.close()
        reader.cancel()
    return outcome, traces


STEADY_DELAY = 0.02  # a model at 50 tokens/s


def token_delays(record: dict[str, Any], trace: wc.ReplyTrace) -> list[float]:
    """Per model token: seconds from the fake's write to the fragment that showed it."""
    tokens = reply_tokens(len(record["token_times"]))
    shown, at, cumulative = 0, 0, 0
    delays = []
    for token, written in zip(tokens, record["token_times"], strict=True):
        cumulative += len(token)
        while at < len(trace.parts) and shown < cumulative:
            shown += len(trace.parts[at])
            at += 1
        if shown < cumulative or at == 0:
            break  # the rest came with the final frame
        delays.append(trace.fragment_times[at - 1] - written)
    return delays


async def _steady_session(
    url: str, origin: str, person: people.Person, tokens: int
) -> list[wc.ReplyTrace]:
    tracker = wc.Tracker()
    ws = await wc.open_socket(url, person, origin)
    reader = asyncio.create_task(wc.read_into(ws, tracker))
    traces = []
    try:
        await ws.send(wc.resync(0))
        await asyncio.sleep(0.2)
        for seq in (1, 2):  # a warm-up reply, then the measured one
            text, _t = wc.marked(seq, f"[[fake:tokens={tokens},delay={STEADY_DELAY}]]")
            await ws.send(wc.send(text))
            trace = await wc.next_reply(tracker, 30)
            await asyncio.wait_for(trace.done.wait(), 60)
            traces.append(trace)
    finally:
        await ws.close()
        reader.cancel()
    return traces[1:]


def run_steady(ctx: Ctx, tokens: int, idle_gap: str) -> list[float]:
    """A 50 tokens/s model: every token's delay from the model to the page (seconds)."""
    app = ctx.env.start_app(ctx.app_env(STREAM_IDLE_GAP=idle_gap))
    try:
        person = people.make_people(1, f"steady{idle_gap}")[0]
        conversation = people.make_practice([person], opening=True)[0]
        ctx.fake.reset()
        traces = asyncio.run(_steady_session(app.ws_url(conversation), app.origin, person, tokens))
        records = [
            r
            for r in ctx.fake.records()
            if r["path"].endswith("/chat/completions") and r["token_times"]
        ]
        return token_delays(records[-1], traces[-1]) if records and traces else []
    finally:
        app.stop()


def _steady_rows(ctx: Ctx, by_need: list[float], timer_only: list[float]) -> None:
    report = ctx.report
    for label, delays, target in (
        ("flush by need (default)", by_need, True),
        ("timer only (40 ms, the previous policy)", timer_only, False),
    ):
        hist = histogram()
        for delay in delays:
            record_seconds(hist, delay)
        p50 = pct_ms(hist, 50)
        report.add(
            f"model → page delay p50 at 50 tokens/s, {label} ({len(delays)} tokens)",
            p50,
            "ms",
            target="≤ 2 ms" if target else "",
            met=(p50 is not None and p50 <= 2.0) if target else None,
            digits=2,
        )
        report.add(
            f"model → page delay p99 at 50 tokens/s, {label}", pct_ms(hist, 99), "ms", digits=2
        )


def run_app(ctx: Ctx, sizes: Sizes, flush: str, *, latency: bool) -> Outcome:
    app = ctx.env.start_app(ctx.app_env(STREAM_FLUSH_INTERVAL=flush))
    try:
        person = people.make_people(1, f"stream{flush}")[0]
        conversation = people.make_practice([person], opening=True)[0]
        # A warm-up reply: the first request builds the SDK client and imports lazily.
        warm = Sizes(tokens=20, reps=1, sends=0)
        asyncio.run(
            _app_session(
                ctx, app.ws_url(conversation), app.origin, person, app.proc, warm, latency=False
            )
        )
        ctx.fake.reset()
        outcome, traces = asyncio.run(
            _app_session(
                ctx, app.ws_url(conversation), app.origin, person, app.proc, sizes, latency=latency
            )
        )
        if latency:
            _match_fake(ctx, outcome)
        for trace, expected in traces:
            status, content, metadata = people.message_row(trace.message_id)
            outcome.problems += trace.check(status, content, expected, metadata.get("frames"))
            outcome.repaired += trace.repaired
            outcome.frames_sent += trace.frames_sent
        errors = app.errors()
        if errors:
            outcome.problems.append(f"daphne logged errors: {errors[:3]}")
    finally:
        app.stop()
    return outcome


# ---------------------------------------------------------------------------- the baseline


async def _baseline_session(url: str, proc: psutil.Process, sizes: Sizes) -> Outcome:
    outcome = Outcome()
    ws: ClientConnection = await connect(
        url, compression=None, proxy=None, ping_interval=None, max_size=None, max_queue=256
    )

    async def one(text: str, expected: str) -> tuple[float | None, float]:
        first: float | None = None
        parts: list[str] = []
        await ws.send(wc.send(text))
        while True:
            frame = await asyncio.wait_for(ws.recv(), 30)
            now = time.monotonic()
            assert isinstance(frame, str)
            if frame.startswith("t:"):
                if first is None:
                    first = now
                parts.append(frame[2:])
            elif frame.startswith("d:"):
                if "".join(parts) != expected:
                    outcome.problems.append("baseline: received text differs from the model's")
                return first, now

    try:
        await one("warm-up [[fake:tokens=20,delay=0]]", "".join(reply_tokens(20)))
        long_text = "".join(reply_tokens(sizes.tokens))
        for seq in range(1, sizes.reps + 1):
            text, _t = wc.marked(seq, f"[[fake:tokens={sizes.tokens},delay=0]]")
            cpu0 = cpu_seconds(proc)
            sent = time.monotonic()
            _first, end = await one(text, long_text)
            await asyncio.sleep(0.1)
            cpu = cpu_seconds(proc) - cpu0
            outcome.tokens_per_s.append(sizes.tokens / (end - sent))
            outcome.cpu_per_token_us.append(cpu / sizes.tokens * 1e6)
            outcome.frames.append(sizes.tokens + 1)
        short_text = "".join(reply_tokens(SHORT_TOKENS))
        for i in range(sizes.sends):
            text, mark = wc.marked(1000 + i, SHORT_DIRECTIVE)
            sent = time.monotonic()
            first, _end = await one(text, short_text)
            outcome.sends.append((sent, mark, first))
            await asyncio.sleep(0.03)
    finally:
        await ws.close()
    return outcome


def run_baseline(ctx: Ctx, sizes: Sizes, model_client: str) -> Outcome:
    ctx.fake.reset()
    proc, url = start_baseline(ctx.fake.base_url, model_client)
    try:
        outcome = asyncio.run(_baseline_session(url, psutil.Process(proc.pid), sizes))
        _match_fake(ctx, outcome)
    finally:
        stop_process(proc)
    return outcome


# ---------------------------------------------------------------------------- the part


def run(ctx: Ctx) -> None:
    report = ctx.report
    report.section = "1 stream"
    sizes = Sizes(tokens=200, reps=1, sends=6) if ctx.quick else Sizes(2000, 3, 100)
    n = f"{sizes.tokens:,}"
    print(f"[1] stream: baseline, then the app (flush 40 ms and per token), {n} tokens", flush=True)
    raw = run_baseline(ctx, sizes, "raw")
    sdk = run_baseline(ctx, sizes, "sdk")
    batched = run_app(ctx, sizes, "0.04", latency=True)
    per_token = run_app(ctx, sizes, "0", latency=False)
    steady_tokens = 40 if ctx.quick else 150
    by_need = run_steady(ctx, steady_tokens, "0.005")
    timer_only = run_steady(ctx, steady_tokens, "0")  # the policy before flush by need

    for name, outcome in (
        ("baseline raw", raw),
        ("baseline sdk", sdk),
        ("app flush 40 ms", batched),
        ("app flush 0", per_token),
    ):
        report.check(
            f"{name}: every reply's frames equal the saved text",
            not outcome.problems,
            "; ".join(outcome.problems[:5]),
        )
        if outcome.repaired:
            report.note(
                f"{name}: the channel layer dropped {outcome.repaired:,} of "
                f"{outcome.frames_sent:,} token frames past a channel's capacity (the page read "
                "slower than the model wrote); the numbered parts caught every gap, and a "
                "snapshot or the final frame made the page whole"
            )

    base_tps, base_cpu = raw.tps, raw.cpu_us
    for label, outcome in (
        ("flush 40 ms (default)", batched),
        ("flush 0, a frame per token", per_token),
    ):
        tps = outcome.tps
        report.add(
            f"delivered tokens/s, {n}-token reply, model unlimited — {label}",
            tps,
            "tok/s",
            baseline=base_tps,
            target="≥ 80 % of baseline",
            met=None if tps is None or base_tps is None else tps >= 0.8 * base_tps,
            digits=0,
        )
        cpu = outcome.cpu_us
        report.add(
            f"server CPU per token — {label}",
            cpu,
            "µs",
            baseline=base_cpu,
            target="≤ baseline",
            met=None if cpu is None or base_cpu is None else cpu <= base_cpu,
        )
        if outcome.frames:
            report.add(
                f"frames sent for {n} tokens — {label}",
                statistics.median(outcome.frames),
                "",
                baseline=sizes.tokens + 1,
                digits=0,
            )
    report.add(
        "bare websockets + openai SDK (no Django): tokens/s",
        sdk.tps,
        "tok/s",
        baseline=base_tps,
        digits=0,
        note="what the SDK alone costs",
    )
    report.add("bare websockets + openai SDK: CPU per token", sdk.cpu_us, "µs", baseline=base_cpu)

    app_p50, app_p99 = _percentiles(batched.to_model_ms)
    raw_p50, raw_p99 = _percentiles(raw.to_model_ms)
    samples = len(batched.to_model_ms)
    report.add(
        f"send → model request p50 ({samples} sends)",
        app_p50,
        "ms",
        baseline=raw_p50,
        target="≤ 5 ms",
        met=None if app_p50 is None else app_p50 <= 5,
        digits=2,
    )
    report.add("send → model request p99", app_p99, "ms", baseline=raw_p99, digits=2)
    app_p50, app_p99 = _percentiles(batched.first_token_added_ms)
    raw_p50, raw_p99 = _percentiles(raw.first_token_added_ms)
    report.add(
        "server-added first-token latency p50 (model 20 ms/token)",
        app_p50,
        "ms",
        baseline=raw_p50,
        target="≤ 2 ms",
        met=None if app_p50 is None else app_p50 <= 2,
        digits=2,
    )
    report.add("server-added first-token latency p99", app_p99, "ms", baseline=raw_p99, digits=2)
    sdk_p50, _ = _percentiles(sdk.to_model_ms)
    sdk_ft, _ = _percentiles(sdk.first_token_added_ms)
    if sdk_p50 is not None and sdk_ft is not None:
        report.note(
            f"bare websockets + SDK: send → model p50 {sdk_p50:.2f} ms, "
            f"first-token added p50 {sdk_ft:.2f} ms"
        )
    _steady_rows(ctx, by_need, timer_only)
