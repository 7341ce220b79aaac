"""Part — titles: what the model-written title costs after a first answer's reply.

The title request runs after the reply's final frame (chat.coach.tasks.model_title), so it
adds nothing to the reply itself; this part times its pieces in this process against the
bench's fake model: the one non-streamed request through the real SDK (build, send, clean),
cleaning a model's output alone, and the conditional UPDATE that stores it. Values are
reported, never asserted.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.harness import Ctx
from bench.report import histogram, pct_ms, record_seconds

ANSWER = (
    "At my last job our releases took two days, so I automated the tests and wrote a "
    "deploy script; releases then took two hours and the team shipped every day."
)


def run(ctx: Ctx) -> None:
    """Time the title request, the cleaning and the store (values, never asserted)."""
    import openai

    from accounts.models import User
    from chat.coach import titles
    from chat.coach.contract import Turn
    from chat.coach.personas import PERSONAS
    from chat.conversations import title_from_text
    from chat.models import Conversation, Persona
    from chat.practice import services

    report = ctx.report
    report.section = "titles"
    iterations = 10 if ctx.quick else 200
    history = [
        Turn(role="assistant", content="Tell me about a time you made a slow process faster."),
        Turn(role="user", content=ANSWER),
    ]
    messages = titles.build_messages(history, "Good. What did you learn from it?")

    async def requests() -> tuple[Any, list[str]]:
        client = openai.AsyncOpenAI(api_key="bench", base_url=ctx.fake.base_url, max_retries=0)
        hist, got = histogram(), []
        try:
            for i in range(iterations + 3):
                started = time.perf_counter()
                title = await titles.request_title(
                    client, model="bench", messages=messages, timeout=5.0
                )
                if i >= 3:  # the first ones open the connection and warm the SDK
                    record_seconds(hist, time.perf_counter() - started)
                got.append(title)
        finally:
            await client.close()
        return hist, got

    request_hist, got = asyncio.run(requests())
    report.add(
        f"title request round trip p50 (real SDK, fake model, {iterations} requests)",
        pct_ms(request_hist, 50),
        "ms",
        digits=2,
    )
    report.add("title request round trip p99", pct_ms(request_hist, 99), "ms", digits=2)
    report.check("every title request gave a title", all(got), f"{sum(map(bool, got))}/{len(got)}")

    raw = '**Title:** "Automating slow releases."\n\nThis title sums up the answer.'
    clean = histogram()
    for _ in range(iterations * 10):
        started = time.perf_counter()
        titles.clean_title(raw)
        record_seconds(clean, time.perf_counter() - started)
    value = pct_ms(clean, 50)
    report.add(
        "cleaning one model output p50", None if value is None else value * 1000, "µs", digits=1
    )

    data = next(p for p in PERSONAS if p["slug"] == "interview-behavioural")
    persona = Persona.objects.get_or_create(slug=data["slug"], defaults=data)[0]
    user = User.objects.create_user(
        email=f"bench-titles-{time.time_ns()}@example.com", password="x", nickname="Bench"
    )
    store = histogram()
    automatic = title_from_text(ANSWER)
    stored_ok = True
    for _ in range(iterations):
        conversation = services.practice_start(user=user, persona=persona)
        Conversation.objects.filter(pk=conversation.pk).update(title=automatic)
        started = time.perf_counter()
        stored = titles.store_title(conversation.pk, automatic=automatic, title="Faster releases")
        record_seconds(store, time.perf_counter() - started)
        stored_ok = stored_ok and stored
    report.add("storing it (one conditional UPDATE) p50", pct_ms(store, 50), "ms", digits=2)
    report.check("every automatic title was replaced", stored_ok)
    Conversation.objects.filter(owner=user).delete()
    user.delete()
