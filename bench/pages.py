"""Part 4 — pages: requests/s and latency over keep-alive HTTP, SQL queries per page.

Query counts are taken in-process (Django's test Client + CaptureQueriesContext against
the bench database); throughput from a separate daphne with a few keep-alive clients.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass

from bench import people
from bench.harness import AppServer, Ctx
from bench.report import histogram, pct_ms, record_seconds

CLIENTS = 4
# An empty JSON answer through the whole middleware stack (session and user read).
FLOOR = "/health/"
# The learner's answers on one page of messages (every other message of the newest 50).
PAGE_ANSWERS = 25
QUERY_LIMIT = 15


@dataclass
class Load:
    requests: int = 0
    errors: int = 0
    rps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None


def count_queries(person: people.Person, path: str) -> tuple[int, int]:
    """(status, SQL queries) for one signed-in GET, in this process."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.cookies["sessionid"] = person.session_key
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    return response.status_code, len(captured.captured_queries)


def load(
    app: AppServer, person: people.Person, path: str, seconds: float, clients: int = CLIENTS
) -> Load:
    """GET `path` from `clients` keep-alive connections for `seconds`."""
    result = Load()
    hists = [histogram() for _ in range(clients)]
    counts = [[0, 0] for _ in range(clients)]
    stop_at = time.monotonic() + seconds
    headers = {"Cookie": person.cookie, "Connection": "keep-alive"}

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
        try:
            while time.monotonic() < stop_at:
                started = time.monotonic()
                try:
                    conn.request("GET", path, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    ok = response.status == 200
                except (OSError, http.client.HTTPException):
                    ok = False
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
                record_seconds(hists[i], time.monotonic() - started)
                counts[i][0 if ok else 1] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    wall = time.monotonic() - started
    total = hists[0]
    for other in hists[1:]:
        total.add(other)
    result.requests = sum(c[0] for c in counts)
    result.errors = sum(c[1] for c in counts)
    result.rps = result.requests / wall if wall else 0.0
    result.p50_ms, result.p99_ms = pct_ms(total, 50), pct_ms(total, 99)
    return result


def run(ctx: Ctx) -> None:
    report = ctx.report
    report.section = "4 pages"
    seconds = 0.4 if ctx.quick else 4.0
    history = 100 if ctx.quick else 1000
    n_rooms = 20 if ctx.quick else 200
    print(f"[4] pages: home, conversation with {history} messages, /rooms/ with {n_rooms} rooms")
    reader = people.make_people(1, "reader")[0]
    conversations = people.make_practice([reader] * 30)
    big, small, carded = conversations[0], conversations[1], conversations[2]
    people.fill_history(big, reader, history)
    people.fill_history(small, reader, 10)
    # As a practice conversation is: every answer on the page with its feedback card.
    people.fill_history(carded, reader, history, cards=PAGE_ANSWERS)
    people.make_rooms(reader, n_rooms)
    big_page = f"conversation page, {history:,} messages"
    carded_page = f"conversation page, {history:,} messages, a feedback card on every answer"
    pages = {
        "home page": "/",
        big_page: f"/c/{big}/",
        carded_page: f"/c/{carded}/",
        f"/rooms/ with {n_rooms} rooms": "/rooms/",
    }

    queries: dict[str, int] = {}
    statuses: dict[str, int] = {}
    for name, path in [*pages.items(), ("conversation page, 10 messages", f"/c/{small}/")]:
        statuses[name], queries[name] = count_queries(reader, path)
    report.check(
        "every page answers 200 to a signed-in learner",
        all(s == 200 for s in statuses.values()),
        ", ".join(f"{k}: {v}" for k, v in statuses.items() if v != 200),
    )

    app = ctx.env.start_app(ctx.app_env())
    results: dict[str, Load] = {}
    try:
        for name, path in pages.items():
            load(app, reader, path, min(0.3, seconds))  # warm-up: templates, connections
            results[name] = load(app, reader, path, seconds)
        alone = load(app, reader, pages[big_page], seconds / 2, clients=1)
        # The same-run floor: the cheapest signed-in request through the same stack (the
        # session and the user are read, the response is a few bytes), by the same clients.
        load(app, reader, FLOOR, min(0.3, seconds))
        floor = load(app, reader, FLOOR, seconds)
        floor_alone = load(app, reader, FLOOR, seconds / 2, clients=1)
    finally:
        app.stop(kill=True)
    report.check(
        "page load: every request answered 200",
        all(r.errors == 0 for r in results.values()),
        ", ".join(f"{k}: {r.errors} errors" for k, r in results.items() if r.errors),
    )
    for name, result in results.items():
        report.add(
            f"{name}: requests/s ({CLIENTS} keep-alive clients)",
            result.rps,
            "req/s",
            note=f"p50 {result.p50_ms or 0:.1f} ms, p99 {result.p99_ms or 0:.1f} ms",
            digits=0,
        )
    report.add(
        f"{big_page}: p50 latency, {CLIENTS} keep-alive clients",
        results[big_page].p50_ms,
        "ms",
        note=f"one client at a time: p50 {alone.p50_ms or 0:.1f} ms (the time one request takes); "
        f"baseline: {FLOOR} by the same clients",
        target="≤ 25 ms",
        met=(results[big_page].p50_ms or 1e9) <= 25,
        digits=1,
        baseline=floor.p50_ms,
    )
    report.add(
        f"{carded_page}: p50 latency, {CLIENTS} keep-alive clients",
        results[carded_page].p50_ms,
        "ms",
        note=f"{results[carded_page].rps:,.0f} req/s",
        digits=1,
        baseline=results[big_page].p50_ms,
    )
    report.add(
        f"{FLOOR}, the floor of any signed-in request: p50, {CLIENTS} clients",
        floor.p50_ms,
        "ms",
        note=f"{floor.rps:,.0f} req/s; one client at a time: p50 {floor_alone.p50_ms or 0:.1f} ms",
        digits=1,
    )
    small_q = queries["conversation page, 10 messages"]
    big_q = queries[f"conversation page, {history:,} messages"]
    report.add(
        f"SQL queries: conversation page, 10 vs {history:,} messages",
        big_q,
        "queries",
        note=f"{small_q} with 10 messages",
        target=f"same count, ≤ {QUERY_LIMIT}",
        met=big_q == small_q and big_q <= QUERY_LIMIT,
        digits=0,
    )
    for name in (carded_page, "home page", f"/rooms/ with {n_rooms} rooms"):
        report.add(
            f"SQL queries: {name}",
            queries[name],
            "queries",
            target=f"≤ {QUERY_LIMIT}",
            met=queries[name] <= QUERY_LIMIT,
            digits=0,
        )
