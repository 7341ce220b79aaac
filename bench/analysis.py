"""Part — answer analysis: how long `analyse()` takes on a 300-word interview answer.

Pure Python in this process (no daphne, no database): many timed calls, p50 and p99 of
the thread's CPU time per call (what a call costs; on a shared machine wall time also
counts the time other processes held the core) and the wall-clock p50.
The spellchecker (used for conversation answers) is timed separately on a 60-word answer,
after its one-off load.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.harness import Ctx
from bench.report import histogram, pct_ms, record_seconds
from chat.coach.analysis import analyse

TARGET_MS = 5.0

_STORY = (
    "Um, so at my last job, I was working as a backend developer in a team of six, and our "
    "checkout service kept timing out during the evening rush. My task was to find out why "
    "before the big sale, which was only two weeks away. I think the first thing I did was, "
    "like, look at the logs, and I noticed that the slow requests all called the same "
    "pricing query. So I reproduced the problem on a copy of the database, and then I "
    "profiled the query and found that it scanned the whole orders table. I added an index "
    "and I rewrote the query so it only read the last thirty days. We also, basically, "
    "added a cache for the prices that change once a day. I mean, I was kind of nervous "
    "about the release, so I rolled it out to ten percent of users first and watched the "
    "error rate. As a result, the average response time dropped from four seconds to three "
    "hundred milliseconds, and we had zero timeouts during the sale. "
)
_SMALL_TALK = (
    "Yesterday I go to the park with my freind and we eat kimchi and some bread. It was, "
    "like, really fun because the weather was beautifull. I have saw many people there "
    "with their dogs. Next weekend I want to go again, maybe with my family, and take some "
    "photos of the trees."
)


def answer_of(n_words: int) -> str:
    """A realistic interview answer of about n words (the story repeated as needed)."""
    words = (_STORY * (n_words // len(_STORY.split()) + 1)).split()
    return " ".join(words[:n_words])


def _time(fn: Callable[[], object], iterations: int) -> tuple[float | None, ...]:
    """(CPU p50, CPU p99, wall p50) in milliseconds."""
    cpu, wall = histogram(), histogram()
    for _ in range(iterations):
        started, started_cpu = time.perf_counter(), time.thread_time()
        fn()
        record_seconds(cpu, time.thread_time() - started_cpu)
        record_seconds(wall, time.perf_counter() - started)
    return pct_ms(cpu, 50), pct_ms(cpu, 99), pct_ms(wall, 50)


def run(ctx: Ctx) -> None:
    """Time the analyser; the values go in the bench table (never asserted)."""
    report = ctx.report
    report.section = "analysis"
    iterations = 300 if ctx.quick else 5000
    answer = answer_of(300)
    question = "Tell me about a time you solved a difficult problem at work."
    for _ in range(20):  # warm-up: regex caches, first allocations
        analyse(answer, question)
    p50, p99, wall = _time(lambda: analyse(answer, question), iterations)
    report.add(f"analyse() CPU p50, 300-word answer ({iterations} calls)", p50, "ms", digits=2)
    report.add("analyse() wall-clock p50, 300-word answer", wall, "ms", digits=2)
    report.add(
        "analyse() CPU p99, 300-word answer",
        p99,
        "ms",
        target=f"≤ {TARGET_MS:g} ms",
        met=None if p99 is None else p99 <= TARGET_MS,
        digits=2,
    )
    started = time.perf_counter()
    analyse(_SMALL_TALK, category="conversation")
    report.note(f"spellchecker first use (word list load) {time.perf_counter() - started:.2f} s")
    _, conv_p99, _ = _time(lambda: analyse(_SMALL_TALK, category="conversation"), iterations // 3)
    report.add(
        "analyse() CPU p99, 60-word small talk with spelling and grammar",
        conv_p99,
        "ms",
        digits=2,
    )
    report.section = ""
