"""Part — decoding the model's stream: the cost per SSE chunk of what reads it.

Pure Python in this process: the app's reader (`orjson.loads` in
chat/coach/openai_provider.py) against the stdlib's `json.loads` on the same chunk bytes,
and the whole SSE decode + absorb of one chunk as the app does it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import orjson

from bench.harness import Ctx
from chat.coach.sse import SSEDecoder

CHUNK = (
    b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" hello"},'
    b'"finish_reason":null}]}'
)


def _per_call_us(fn: Callable[[], object], calls: int, repeats: int = 5) -> float:
    """The best of `repeats` runs, in microseconds per call (CPU time of this thread)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.thread_time()
        for _ in range(calls):
            fn()
        best = min(best, time.thread_time() - started)
    return best / calls * 1e6


def run(ctx: Ctx) -> None:
    """Time the decoders; the values go in the bench table (never asserted)."""
    report = ctx.report
    report.section = "decode"
    calls = 20_000 if ctx.quick else 200_000
    stdlib = _per_call_us(lambda: json.loads(CHUNK), calls)
    ours = _per_call_us(lambda: orjson.loads(CHUNK), calls)
    report.add(
        "one stream chunk: orjson.loads (the app) vs json.loads",
        ours,
        "µs",
        baseline=stdlib,
        target="≤ 0.5× json.loads",
        met=ours <= 0.5 * stdlib,
        digits=2,
    )
    line = b"data: " + CHUNK + b"\n\n"
    decoder = SSEDecoder()
    whole = _per_call_us(lambda: [orjson.loads(e.data) for e in decoder.feed(line)], calls // 4)
    report.add("one stream chunk: SSE decode + orjson.loads", whole, "µs", digits=2)
    report.section = ""
