"""Optional AI feedback on a class answer, asked for by its learner and paid from their quota.

`request` reserves one unit of the learner's own daily quota (the AIUsage ledger, locked
like a practice reply) and marks the answer pending; `run` asks the model through the
practice rubric path (one non-streamed request, validated) off the socket's receive path,
then `complete` stores the rubric or `fail` refunds the unit. Asking again while pending or
after it came costs nothing; answering again with other words resets it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone, translation

from accounts.models import User
from chat import events
from chat.cards import rubric_rows
from chat.coach import quota, replies, rubric
from chat.coach.openai_provider import OpenAIProvider
from chat.coach.providers import get_provider
from chat.dbasync import db_async
from chat.models import AIUsage, ClassAnswer

log = logging.getLogger(__name__)

PENDING, COMPLETE, FAILED = (
    ClassAnswer.AIStatus.PENDING,
    ClassAnswer.AIStatus.COMPLETE,
    ClassAnswer.AIStatus.FAILED,
)
# Tasks of this process, kept so that none is garbage-collected while it waits on the model.
_TASKS: set[asyncio.Task[None]] = set()


class NotAllowedError(Exception):
    """Not the learner's own answer (or no such answer)."""


class OfflineError(Exception):
    """No model is configured: the offline coach has no AI feedback to give."""


class QuotaExhaustedError(Exception):
    """The learner has no AI replies left today."""


def available() -> bool:
    """Whether a model is configured (the offline coach gives no AI feedback)."""
    return isinstance(get_provider(), OpenAIProvider)


@dataclass
class Offer:
    """What the answer card says about AI feedback: the button, its price, or why not."""

    available: bool
    status: str
    remaining: int
    limit: int
    reset_at: dt.datetime
    rows: list[tuple[str, str, int, str]]
    strength: str = ""
    improvement: str = ""
    rewrite: str = ""
    corrections: list[dict[str, Any]] | None = None

    @property
    def average(self) -> float | None:
        return round(sum(r[2] for r in self.rows) / len(self.rows), 1) if self.rows else None


def offer(answer: ClassAnswer, user: User) -> Offer:
    """The AI feedback part of a learner's answer card (their quota read fresh)."""
    status = answer.ai_status
    if status == PENDING and _stale(answer, timezone.now()):
        status = FAILED  # its process died: asking again refunds it and asks anew
    return Offer(
        available=available(),
        status=status,
        remaining=quota.remaining(user),
        limit=quota.daily_limit(user),
        reset_at=quota.reset_at(),
        **shown(answer),
    )


def shown(answer: ClassAnswer) -> dict[str, Any]:
    """The stored rubric as the rubric partial shows it (empty unless complete)."""
    data = answer.ai_feedback if answer.ai_status == COMPLETE else {}
    return {
        "rows": rubric_rows(data.get("rubric") or {}),
        "strength": str(data.get("strength") or ""),
        "improvement": str(data.get("improvement") or ""),
        "rewrite": str(data.get("rewrite") or ""),
        "corrections": list(data.get("corrections") or []),
    }


@dataclass
class Requested:
    """What `request` did: the answer, and the ledger row when a unit was reserved now."""

    answer: ClassAnswer
    usage_id: int | None  # None: nothing new was charged (pending or complete already)


def _stale(answer: ClassAnswer, now: dt.datetime) -> bool:
    """A pending request whose process died: it never settled (see replies.reply_stale_after)."""
    usage: AIUsage | None = answer.ai_usage
    if usage is None or usage.outcome != AIUsage.Outcome.PENDING:
        return True
    # As long as a reply may take, once per attempt of the rubric request.
    return (now - usage.created_at).total_seconds() > replies.reply_stale_after() * rubric.ATTEMPTS


def request(*, answer_id: Any, user: User) -> Requested:
    """Reserve one unit of the learner's quota for AI feedback on their own answer.

    Race-proof like a practice reply: the learner's quota row is locked first (so two tabs
    are serialised), then the answer; an answer already pending or complete charges
    nothing. Raises NotAllowedError, OfflineError or QuotaExhaustedError.
    """
    try:
        pk = int(answer_id)
    except (TypeError, ValueError):
        raise NotAllowedError from None
    if not available():
        raise OfflineError
    with transaction.atomic():
        left = quota.lock(user)
        answer = (
            ClassAnswer.objects.select_for_update(of=("self",))
            .select_related("ai_usage")
            .filter(pk=pk, user_id=user.pk)
            .first()
        )
        if answer is None:
            raise NotAllowedError
        now = timezone.now()
        if answer.ai_status == COMPLETE or (
            answer.ai_status == PENDING and not _stale(answer, now)
        ):
            return Requested(answer=answer, usage_id=None)
        if answer.ai_status == PENDING and answer.ai_usage_id is not None:
            # Orphaned by a process that died before settling it: give that unit back.
            quota.settle(answer.ai_usage_id, AIUsage.Outcome.FAILED, refund=True)
        if left <= 0:
            raise QuotaExhaustedError
        usage = quota.record(user, now=now)
        answer.ai_status, answer.ai_feedback, answer.ai_usage = PENDING, {}, usage
        answer.save(update_fields=["ai_status", "ai_feedback", "ai_usage"])
        return Requested(answer=answer, usage_id=usage.pk)


def inputs(answer_id: Any) -> dict[str, Any] | None:
    """What the rubric request needs: the question, the answer, its analysis, the language."""
    answer = (
        ClassAnswer.objects.select_related("session__klass__persona", "user")
        .filter(pk=answer_id)
        .first()
    )
    if answer is None:
        return None
    session = answer.session
    persona = session.klass.persona
    questions = session.questions
    return {
        "question": str(questions[answer.step - 1]) if 0 < answer.step <= len(questions) else "",
        "answer": answer.text,
        "category": persona.category if persona else "interview",
        "analysis": answer.analysis,
        "language": answer.user.language or translation.get_language() or "",
    }


@transaction.atomic
def complete(
    *, answer_id: Any, usage_id: int, result: dict[str, Any], model: str, metadata: dict[str, Any]
) -> ClassAnswer | None:
    """Store the rubric; the unit stays counted. None when the answer changed meanwhile."""
    quota.settle(usage_id, AIUsage.Outcome.COMPLETE, refund=False)
    answer = ClassAnswer.objects.select_for_update().filter(pk=answer_id).first()
    if answer is None or answer.ai_usage_id != usage_id:
        return None  # answered again with other words: this rubric is for the old text
    answer.ai_status = COMPLETE
    answer.ai_feedback = {
        "rubric": {axis: result[axis] for axis in rubric.RUBRIC_AXES},
        "strength": result.get("strength", ""),
        "improvement": result.get("improvement", ""),
        "rewrite": result.get("rewrite", ""),
        "corrections": list(result.get("corrections", [])),
        "model": model,
        **metadata,
    }
    answer.save(update_fields=["ai_status", "ai_feedback"])
    return answer


@transaction.atomic
def fail(*, answer_id: Any, usage_id: int, metadata: dict[str, Any]) -> ClassAnswer | None:
    """The model gave no rubric: the unit is refunded and the card says so."""
    quota.settle(usage_id, AIUsage.Outcome.FAILED, refund=True)
    answer = ClassAnswer.objects.select_for_update().filter(pk=answer_id).first()
    if answer is None or answer.ai_usage_id != usage_id:
        return None
    answer.ai_status, answer.ai_feedback = FAILED, {"problems": metadata.get("problems", [])}
    answer.save(update_fields=["ai_status", "ai_feedback"])
    return answer


@transaction.atomic
def recover(answer: ClassAnswer | None) -> ClassAnswer | None:
    """A pending ask orphaned by a process that died is failed and refunded (a page opened)."""
    if answer is None or answer.ai_status != PENDING or not _stale(answer, timezone.now()):
        return answer
    usage_id = answer.ai_usage_id
    if usage_id is None:
        return answer
    return fail(answer_id=answer.pk, usage_id=usage_id, metadata={"problems": ["interrupted"]})


def reset(answer: ClassAnswer) -> None:
    """Answered again with other words: the old rubric no longer applies (not saved here)."""
    answer.ai_status, answer.ai_feedback, answer.ai_usage = ClassAnswer.AIStatus.NONE, {}, None


# --- the model call, off the socket's receive path ----------------------------------------------


async def ask(answer_id: Any, usage_id: int) -> tuple[ClassAnswer | None, bool]:
    """Ask the model for the rubric and store how it went: (the answer, refunded)."""
    provider = get_provider()
    started = time.monotonic()
    metadata: dict[str, Any] = {}
    try:
        found = await db_async(inputs)(answer_id)
        if found is None or not isinstance(provider, OpenAIProvider):
            raise RuntimeError("no answer or no model")
        outcome = await rubric.request_rubric(
            provider.client(),
            model=provider.config.model,
            messages=rubric.build_messages(**found),
        )
        metadata = {
            "attempts": outcome.attempts,
            "structured": outcome.structured,
            "problems": outcome.problems,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        }
        if outcome.rubric is not None:
            answer = await db_async(complete)(
                answer_id=answer_id,
                usage_id=usage_id,
                result=outcome.rubric,
                model=outcome.model,
                metadata=metadata,
            )
            return answer, False
    except asyncio.CancelledError:
        # The process is stopping: the learner is not charged for what never came.
        metadata = {"problems": ["interrupted"]}
        await asyncio.shield(
            db_async(fail)(answer_id=answer_id, usage_id=usage_id, metadata=metadata)
        )
        raise
    except Exception:
        log.exception("class answer %s: AI feedback failed", answer_id)
        metadata = {"problems": ["crashed"]}
    answer = await db_async(fail)(answer_id=answer_id, usage_id=usage_id, metadata=metadata)
    return answer, True


def start(answer_id: Any, usage_id: int, *, then: Any) -> asyncio.Task[None]:
    """Run `ask` as a task of this process, then `then(answer, refunded)` to publish it."""

    async def run() -> None:
        answer, refunded = await ask(answer_id, usage_id)
        await then(answer, refunded)

    task = asyncio.create_task(run(), name=f"class-ai-feedback-{answer_id}")
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return task


async def publish_quota(user_id: int) -> None:
    """The learner's quota badge on every page of theirs."""
    html = await db_async(quota.frame_for)(user_id)
    await events.publish_safely(events.user_group(user_id), events.frame(html))
