"""Part "layers" — the Redis list layer's receive path alone, in this process: one reader vs
channels-redis's own `receive()`.

N channels of one process wait in a loop shaped like Channels' consumer (a task per
`receive()`, as `await_many_dispatch` makes); one group message goes to all of them, R
times, each time once every receiver has the previous one. Reported per variant: the
process's CPU per delivered message and the time from `group_send` to the last receiver
(p50/p99 over the rounds). The variants alternate round by round (interleaved), so the
machine's load falls on both alike. Redis: 127.0.0.1:6379, DB BENCH_REDIS_DB (default 14).

Run alone: `BENCH_REDIS_DB=6 python -m bench.layers [N] [rounds]`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from typing import Any

from redis.exceptions import RedisError

from project.layers import PooledRedisChannelLayer

REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "14"))
VARIANTS = (("shared reader", True), ("channels-redis receive", False))


async def _receivers(
    layer: Any, channels: list[str], counts: list[int]
) -> list[asyncio.Task[None]]:
    async def loop(i: int, channel: str) -> None:
        while True:
            # A new task per receive, as Channels' await_many_dispatch does.
            await asyncio.ensure_future(layer.receive(channel))
            counts[i] += 1

    return [asyncio.create_task(loop(i, c)) for i, c in enumerate(channels)]


async def _round(layer: Any, counts: list[int], want: int) -> float:
    started = time.perf_counter()
    await layer.group_send("bench", {"type": "frame", "html": "<div>Question 3 of 8</div>" * 4})
    while min(counts) < want:
        await asyncio.sleep(0.0005)
    return time.perf_counter() - started


async def _measure(n: int, rounds: int) -> dict[str, dict[str, float]]:
    layers = {}
    state: dict[str, tuple[list[int], list[asyncio.Task[None]]]] = {}
    for label, shared in VARIANTS:
        layer = PooledRedisChannelLayer(
            hosts=[{"address": f"redis://127.0.0.1:6379/{REDIS_DB}", "socket_timeout": 10}],
            prefix=f"benchlayers{uuid.uuid4().hex[:8]}",
            capacity=1000,
            shared_reader=shared,
        )
        channels = [await layer.new_channel() for _ in range(n)]
        for channel in channels:
            await layer.group_add("bench", channel)
        counts = [0] * n
        state[label] = (counts, await _receivers(layer, channels, counts))
        layers[label] = layer
    await asyncio.sleep(0.2)
    walls: dict[str, list[float]] = {label: [] for label, _ in VARIANTS}
    cpu: dict[str, float] = dict.fromkeys(walls, 0.0)
    for r in range(1, rounds + 1):
        for label, _shared in VARIANTS if r % 2 else reversed(VARIANTS):
            before = time.process_time()
            walls[label].append(await _round(layers[label], state[label][0], r))
            cpu[label] += time.process_time() - before
    results = {}
    for label, _ in VARIANTS:
        for task in state[label][1]:
            task.cancel()
        await asyncio.gather(*state[label][1], return_exceptions=True)
        await layers[label].flush()
        ordered = sorted(walls[label])
        results[label] = {
            "cpu_us_per_delivery": 1e6 * cpu[label] / (n * rounds),
            "p50_ms": 1000 * ordered[len(ordered) // 2],
            "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        }
    return results


def run(ctx: Any) -> None:
    report = ctx.report
    report.section = "layers"
    n, rounds = (200, 10) if ctx.quick else (1000, 40)
    try:
        results = asyncio.run(_measure(n, rounds))
    except (OSError, RedisError) as exc:
        report.note(f"Redis at 127.0.0.1:6379 is not answering ({exc}): part skipped")
        return
    for label, figures in results.items():
        report.add(
            f"list layer, {n} receivers in one process, {label}: CPU per delivered message",
            figures["cpu_us_per_delivery"],
            "µs",
            note=f"group_send → last receiver p50 {figures['p50_ms']:.1f} ms, "
            f"p99 {figures['p99_ms']:.1f} ms ({rounds} rounds, interleaved)",
            digits=1,
        )


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    for name, figures in asyncio.run(_measure(size, reps)).items():
        print(
            f"{name}: {figures['cpu_us_per_delivery']:.1f} µs CPU per delivery, "
            f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms"
        )
