"""Part — feedback: what the card adds between pressing Send and the card on screen.

The card rides in the same frame as the learner's message (the analysis is stored in the
send's own transaction and thread hop), so the latency it adds is the extra work on that
path: `feedback_record` (analysis + one INSERT, plus the question lookup) and rendering
the card with the highlighted answer. Timed in this process against the bench database,
each sample paired with the same send without feedback (message stored and rendered), so
the difference is the added cost; p50/p99 of the differences against the 50 ms target.
"""

from __future__ import annotations

import time

from bench.analysis import answer_of
from bench.harness import Ctx
from bench.report import histogram, pct_ms, record_seconds

TARGET_MS = 50.0


def run(ctx: Ctx) -> None:
    """Time the send path with and without the feedback card (values, never asserted)."""
    from django.db import transaction

    from accounts.models import User
    from chat import frames
    from chat.coach import feedback
    from chat.coach.personas import PERSONAS
    from chat.conversations import message_create
    from chat.models import Conversation, Message, Persona
    from chat.practice import services

    report = ctx.report
    report.section = "feedback"
    iterations = 30 if ctx.quick else 400
    data = next(p for p in PERSONAS if p["slug"] == "interview-behavioural")
    persona = Persona.objects.get_or_create(slug=data["slug"], defaults=data)[0]
    user = User.objects.create_user(
        email=f"bench-feedback-{time.time_ns()}@example.com", password="x", nickname="Bench"
    )
    conversation = services.practice_start(user=user, persona=persona)
    answer = answer_of(120)

    def send(with_card: bool) -> float:
        started = time.perf_counter()
        with transaction.atomic():
            message = message_create(conversation=conversation, author=user, content=answer)
            if with_card:
                feedback.feedback_record(message=message, conversation=conversation)
        html = frames.message_appended(message)
        elapsed = time.perf_counter() - started
        assert ('data-testid="feedback"' in html) is with_card
        return elapsed

    for _ in range(5):  # warm-up: templates, regexes, statement caches
        send(True)
        send(False)
    added, plain = histogram(), histogram()
    for _ in range(iterations):
        with_card, without = send(True), send(False)
        record_seconds(added, max(0.0, with_card - without))
        record_seconds(plain, without)
    p50, p99 = pct_ms(added, 50), pct_ms(added, 99)
    report.add(
        f"send → card added latency p50, 120-word answer ({iterations} pairs)",
        p50,
        "ms",
        digits=2,
    )
    report.add(
        "send → card added latency p99",
        p99,
        "ms",
        target=f"≤ {TARGET_MS:g} ms",
        met=None if p99 is None else p99 <= TARGET_MS,
        digits=2,
    )
    report.add("send without the card (store + render) p50", pct_ms(plain, 50), "ms", digits=2)
    Message.objects.filter(conversation=conversation).delete()
    Conversation.objects.filter(pk=conversation.pk).delete()
    user.delete()
    report.section = ""
