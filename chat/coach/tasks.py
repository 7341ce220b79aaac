"""This process's reply tasks: model deltas → the streaming broadcast → the conversation's pages.

A reply runs as an asyncio task owned by the process, not by a socket: closing the tab
does not stop it, and it saves the text as it grows. Starting a reply publishes its own
opening frames (the learner's message, the empty reply, the quota) after the model request
is on the wire, so its token frames can never overtake them. Stop and snapshot requests
reach it through the conversation's control group, from any process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError
from django.utils.translation import gettext as _

from chat import events, frames
from chat.coach import feedback, quota, replies, rubric, titles
from chat.coach.broadcast import ReplyBroadcast
from chat.coach.contract import ProviderError, ReplyRequest
from chat.coach.openai_provider import OpenAIProvider
from chat.coach.providers import get_provider
from chat.coach.running import JOBS, is_running
from chat.dbasync import db_async
from chat.models import Message

log = logging.getLogger(__name__)

__all__ = ["JOBS", "ReplyJob", "is_running", "start_exchange", "start_reply"]

CONTROL_RETRY_SECONDS = 0.5
FINISH_ATTEMPTS = 5
FINISH_RETRY_SECONDS = 1.0


@dataclass
class ReplyJob:
    """One reply being generated."""

    message: Message
    user_id: int
    usage_id: int | None
    request: ReplyRequest
    # Frames the reply sends before its first token: the exchange's messages, in order.
    opening: list[Message] = field(default_factory=list)
    # The sender's quota after this reply was reserved, (left, daily limit): its frame is
    # rendered with the opening frames, once the model request is on the wire.
    quota_left: tuple[int, int] | None = None
    title_html: str = ""  # the conversation's new name, when this answer gave it one
    # That name (the first answer's, shortened): a model, once the reply is complete, is
    # asked for a better one, which replaces it unless the learner renamed it meanwhile.
    auto_title: str = ""
    parts: list[str] = field(default_factory=list)
    stop_requested: bool = False
    task: asyncio.Task[None] | None = None
    broadcast: ReplyBroadcast | None = None
    # Set once the model stream ended: from then on the reply is storing how it ended.
    finishing: bool = False
    # The answer's feedback the model completes after the reply (same quota unit).
    feedback_id: int | None = None
    # A practice answer whose feedback and title this task records once the model request
    # is on the wire (`replies.answer_noted`), in the send's language; None once recorded.
    note_answer: Message | None = None
    language: str = ""

    @property
    def conversation_id(self) -> Any:
        return self.message.conversation_id

    @property
    def content(self) -> str:
        return "".join(self.parts)


def start_reply(job: ReplyJob) -> asyncio.Task[None]:
    """Run a reply in the background of this process's event loop."""
    key = str(job.message.pk)
    JOBS[key] = job
    # Started eagerly: the reply runs up to its first real wait (the model request on the
    # wire) before the caller goes on.
    job.task = asyncio.eager_task_factory(
        asyncio.get_running_loop(), run_reply(job), name=f"reply-{key}"
    )
    job.task.add_done_callback(lambda _t: JOBS.pop(key, None))
    return job.task


async def start_exchange(exchange: replies.Exchange, *, user_id: int) -> None:
    """Publish what a send wrote; when the coach answers, its reply task publishes it all.

    The quota is reserved already: if anything fails (or the page's handler is cancelled)
    before the reply task owns the reply, the reply is ended failed and refunded here,
    not left `streaming` until the orphan sweep.
    """
    try:
        await _start_exchange(exchange, user_id=user_id)
    except BaseException:
        if exchange.reply is not None and str(exchange.reply.pk) not in JOBS:
            await asyncio.shield(abandon_exchange(exchange))
        raise


async def abandon_exchange(exchange: replies.Exchange) -> None:
    """End a reply that never reached its task: failed, refunded, explained, published."""
    assert exchange.reply is not None
    if exchange.note_later and exchange.user_message is not None:
        # The reply task never recorded the answer's feedback: its card comes with it.
        try:
            await db_async(replies.answer_noted)(
                exchange.user_message, exchange.language, if_missing=True
            )
        except Exception:
            log.exception("reply %s: the answer's feedback was not stored", exchange.reply.pk)
            answer = exchange.user_message
            type(answer).feedback.related.set_cached_value(answer, None)
    try:
        message, error = await db_async(replies.reply_finish)(
            message_id=exchange.reply.pk,
            content="",
            status=Message.Status.FAILED,
            metadata={"error": "unknown"},
            usage_id=exchange.usage_id,
            error_text=_("Something went wrong while the coach was answering."),
        )
    except Exception:
        log.exception("reply %s: could not end it (the orphan sweep will)", exchange.reply.pk)
        return
    shown = [m for m in (exchange.user_message, message, error) if m is not None]
    with contextlib.suppress(Exception):
        for shown_message in shown:
            await events.publish_safely(
                events.conv_group(shown_message.conversation_id),
                events.frame(frames.message_appended(shown_message), seq=shown_message.seq),
            )


async def _start_exchange(exchange: replies.Exchange, *, user_id: int) -> None:
    opening = [m for m in (exchange.user_message, exchange.reply) if m is not None]
    # The first answer named the conversation: every open page (and its tab) shows it.
    title_html = frames.conversation_title(exchange.retitled) if exchange.retitled else ""
    if exchange.reply is not None and exchange.request is not None:
        start_reply(
            ReplyJob(
                message=exchange.reply,
                user_id=user_id,
                usage_id=exchange.usage_id,
                request=exchange.request,
                opening=opening,
                quota_left=(exchange.remaining, exchange.limit),
                feedback_id=exchange.feedback_id,
                title_html=title_html,
                auto_title=exchange.retitled,
                note_answer=exchange.user_message if exchange.note_later else None,
                language=exchange.language,
            )
        )
        return
    for message in opening:
        await events.publish(
            events.conv_group(message.conversation_id),
            events.frame(frames.message_appended(message), seq=message.seq),
        )
    if title_html and exchange.user_message is not None:
        await events.publish(
            events.conv_group(exchange.user_message.conversation_id), events.frame(title_html)
        )
    if exchange.reply is not None or exchange.quota_refused:
        html = frames.quota(exchange.remaining, exchange.limit, quota.reset_at())
        await events.publish(events.user_group(user_id), events.frame(html))


def stop_local(message_id: Any) -> bool:
    """Cancel a reply if it runs in this process; True when it did."""
    job = JOBS.get(str(message_id))
    if job is None or job.task is None or job.task.done():
        return False
    if job.stop_requested or job.finishing:
        return True  # already ending: a second cancel would interrupt storing how it ended
    job.stop_requested = True
    job.task.cancel()
    return True


async def shutdown(timeout: float = 10.0) -> int:
    """The process is stopping: end every running reply and wait until each stored its end.

    The replies are cancelled without a stop request, so `run_reply` stores each one
    `failed` ("interrupted") with the text it has, refunds it and closes the model stream.
    Returns how many replies were running.
    """
    running = [j for j in list(JOBS.values()) if j.task is not None and not j.task.done()]
    tasks = [j.task for j in running if j.task is not None]
    for job in running:
        if not job.finishing and job.task is not None:  # one storing its end is left to finish
            job.task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)
    provider = get_provider()
    if isinstance(provider, OpenAIProvider):
        with contextlib.suppress(Exception):  # the model's connections close with the process
            await provider.aclose()
    return len(tasks)


async def request_stop(conversation_id: Any, message_id: Any | None) -> None:
    """Stop a reply wherever it runs: here at once, elsewhere through the control group."""
    if message_id is not None and stop_local(message_id):
        return
    await events.publish(events.ctl_group(conversation_id), events.reply_stop(message_id))


async def request_snapshot(conversation_id: Any, reply_to: str) -> None:
    """Ask the running replies of a conversation to send their full text to one page."""
    handled = []
    for key, job in list(JOBS.items()):
        if job.conversation_id == conversation_id and job.broadcast is not None:
            job.broadcast.want_snapshot(reply_to)
            handled.append(key)
    # Replies running in other processes hear it through the control group.
    await events.publish(
        events.ctl_group(conversation_id), events.reply_snapshot(reply_to, handled)
    )


async def _listen_control(job: ReplyJob, channel: str) -> None:
    layer = get_channel_layer()
    group = events.ctl_group(job.conversation_id)
    # Joined here, not before the model request: with Redis that is a round trip the
    # request need not wait for (a stop in this process never needs the group).
    try:
        await layer.group_add(group, channel)
    except Exception as exc:  # the reply runs anyway; the loop below joins when it can
        log.warning("reply %s: control group unavailable (%s)", job.message.pk, exc)
    while True:
        try:
            event = await layer.receive(channel)
        except Exception as exc:  # the layer went away (Redis restarted): join again when back
            log.warning("reply %s: control channel lost (%s)", job.message.pk, exc)
            await asyncio.sleep(CONTROL_RETRY_SECONDS)
            with contextlib.suppress(Exception):
                await layer.group_add(group, channel)
            continue
        kind = event.get("type")
        if kind == "reply.stop" and event.get("message_id") in (None, str(job.message.pk)):
            if not job.stop_requested and job.task is not None:  # cancel once, never twice
                job.stop_requested = True
                job.task.cancel()
        elif kind == "reply.snapshot" and job.broadcast is not None:
            reply_to = event.get("reply_to")
            # A reply in the asking process already served it (request_snapshot).
            if reply_to and str(job.message.pk) not in event.get("handled", ()):
                job.broadcast.want_snapshot(reply_to)


async def _note_answer(job: ReplyJob, *, if_missing: bool = False) -> None:
    """Record the answer's feedback and title (see `replies.answer_noted`), once.

    The hop runs to its end even if the task is cancelled meanwhile, so its feedback id
    reaches the rubric. On failure the answer shows without its card and the reply's end
    tries again; an orphaned reply's recovery does too.
    """
    answer = job.note_answer
    if answer is None:
        return
    hop = asyncio.ensure_future(
        db_async(replies.answer_noted)(answer, job.language, if_missing=if_missing)
    )
    try:
        try:
            feedback_id, retitled = await asyncio.shield(hop)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                feedback_id, retitled = await hop
                job.note_answer = None
                job.feedback_id, job.auto_title = feedback_id, retitled
            raise
    except Exception:
        log.exception("reply %s: the answer's feedback was not stored", job.message.pk)
        # Rendered without a card, not looked up from the event loop.
        type(answer).feedback.related.set_cached_value(answer, None)
        return
    job.note_answer = None
    job.feedback_id = feedback_id
    if retitled:
        job.auto_title = retitled
        job.title_html = frames.conversation_title(retitled)


async def _publish_opening(job: ReplyJob) -> None:
    """The exchange's own frames, before any token frame of the reply.

    A practice answer's feedback and title are recorded first (with the model request on
    the wire already), so its card rides in the answer's frame as before.
    """
    await _note_answer(job)
    group = events.conv_group(job.conversation_id)
    for message in job.opening:
        html = frames.message_appended(message)
        await events.publish_safely(group, events.frame(html, seq=message.seq))
    if job.quota_left is not None:
        html = frames.quota(*job.quota_left, quota.reset_at())
        await events.publish_safely(events.user_group(job.user_id), events.frame(html))
    if job.title_html:
        await events.publish_safely(group, events.frame(job.title_html))


async def run_reply(job: ReplyJob) -> None:
    """Stream one reply from the model to the conversation, saving it as it grows."""
    message = job.message
    message_id = str(message.pk)
    layer = get_channel_layer()
    started = time.monotonic()
    first_token_at: float | None = None
    status = Message.Status.COMPLETE
    error_text = ""
    error_code = ""
    stream = None
    broadcast = job.broadcast = ReplyBroadcast(message, job.parts)
    first: asyncio.Task[str] | None = None
    # The default prefix on purpose: channels_redis has one receive lock per process and the
    # holder waits only on its own prefix's key, so a "reply." channel would starve every
    # socket of this process until the reply ended (measured by bench/fanout.py).
    control_channel = await layer.new_channel()
    listener = asyncio.create_task(_listen_control(job, control_channel))
    save_task: asyncio.Task[None] | None = None
    last_save = time.monotonic()
    try:
        try:
            stream = get_provider().stream(job.request)
            # Ask the model first: the request goes on the wire (eagerly, up to its first
            # wait) before the opening frames are rendered and published.
            first = asyncio.eager_task_factory(
                asyncio.get_running_loop(), stream.__anext__(), name=f"first-{message_id}"
            )
        finally:
            await _publish_opening(job)
        while True:
            try:
                if first is not None:
                    delta, first = await first, None
                else:
                    delta = await stream.__anext__()
            except StopAsyncIteration:
                break
            if first_token_at is None:
                first_token_at = time.monotonic()
            job.parts.append(delta)
            await broadcast.add(delta)
            now = time.monotonic()
            if now - last_save >= settings.STREAM_SAVE_INTERVAL and (
                save_task is None or save_task.done()
            ):
                # Saved off the hot path: the loop keeps relaying tokens meanwhile.
                last_save = now
                save_task = asyncio.create_task(
                    db_async(replies.reply_checkpoint)(message.pk, job.content)
                )
    except asyncio.CancelledError:
        status = Message.Status.STOPPED
        if not job.stop_requested:
            # The process is shutting down: keep the text, say it was interrupted.
            status = Message.Status.FAILED
            error_code = "interrupted"
            error_text = _("The server restarted while the coach was answering.")
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    except ProviderError as exc:
        status = Message.Status.FAILED
        error_code = exc.code
        error_text = str(exc.message)
    except Exception:  # a bug must still end the reply cleanly
        log.exception("reply %s crashed", message_id)
        status = Message.Status.FAILED
        error_code = "unknown"
        error_text = _("Something went wrong while the coach was answering.")
    finally:
        job.finishing = True
        listener.cancel()
        if first is not None and not first.done():
            first.cancel()
            with contextlib.suppress(BaseException):
                await first
        if stream is not None:
            # Closes the HTTP response: the model server sees us go and stops generating.
            with contextlib.suppress(Exception):
                await asyncio.shield(stream.aclose())
    broadcast.discard()
    with contextlib.suppress(BaseException):
        await listener
    if save_task is not None:
        with contextlib.suppress(BaseException):
            await save_task
    metadata: dict[str, Any] = {
        "model": getattr(stream, "model", "") or job.request.model or "",
        "duration_ms": round((time.monotonic() - started) * 1000, 1),
        "ttft_ms": round((first_token_at - started) * 1000, 1) if first_token_at else None,
        "prompt_tokens": getattr(stream, "prompt_tokens", None),
        "completion_tokens": getattr(stream, "completion_tokens", None),
        "frames": broadcast.frames_sent,
    }
    if error_code:
        metadata["error"] = error_code
    await _finish(job, status=status, metadata=metadata, error_text=error_text)
    with contextlib.suppress(Exception):
        await layer.group_discard(events.ctl_group(job.conversation_id), control_channel)
    if status != Message.Status.COMPLETE:
        return  # a failed or stopped reply asks the model for nothing more
    # After the final frame: neither can delay the reply, and they run side by side.
    follow_ups = []
    if job.feedback_id is not None:
        follow_ups.append(model_feedback(job.feedback_id, model=metadata["model"]))
    if job.auto_title:
        follow_ups.append(model_title(job))
    for outcome in await asyncio.gather(*follow_ups, return_exceptions=True):
        if isinstance(outcome, BaseException):
            log.error("reply %s: a follow-up crashed", message_id, exc_info=outcome)


async def model_feedback(feedback_id: int, *, model: str) -> None:
    """The model's part of an answer's feedback, after its reply: no quota of its own.

    The reply's quota unit covers it (a failed or stopped reply gets none). Any
    failure leaves the analysis alone on the card, with a short notice.
    """
    provider = get_provider()
    if not isinstance(provider, OpenAIProvider):
        return  # the offline coach has no model: the analysis is the whole card
    started = time.monotonic()
    try:
        inputs = await db_async(feedback.rubric_inputs)(feedback_id)
        if inputs is None:
            return
        outcome = await rubric.request_rubric(
            provider.client(),
            model=model or provider.config.model,
            messages=rubric.build_messages(**inputs),
        )
        metadata: dict[str, Any] = {
            "attempts": outcome.attempts,
            "structured": outcome.structured,
            "problems": outcome.problems,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        }
        if outcome.rubric is not None:
            await db_async(feedback.feedback_complete)(
                feedback_id=feedback_id,
                rubric=outcome.rubric,
                model=outcome.model,
                metadata=metadata,
            )
        else:
            await db_async(feedback.feedback_failed)(
                feedback_id=feedback_id, model=outcome.model, metadata=metadata
            )
    except Exception:  # the reply is stored already: the card keeps its analysis
        log.exception("feedback %s: the model's part failed", feedback_id)
        with contextlib.suppress(Exception):
            await db_async(feedback.feedback_failed)(
                feedback_id=feedback_id, model=model, metadata={"problems": ["crashed"]}
            )
    await publish_card(feedback_id)


async def model_title(job: ReplyJob) -> None:
    """A model-written title for a conversation its first answer named: no quota of its own.

    The reply's quota unit covers it. On any failure the first answer's title stays
    (logged); a learner who renamed the conversation meanwhile keeps their name.
    """
    provider = get_provider()
    if not isinstance(provider, OpenAIProvider):
        return  # the offline coach has no model: the first answer's title stays
    title = await titles.request_title(
        provider.client(),
        model=job.request.model or provider.config.model,
        messages=titles.build_messages(job.request.history, job.content),
        timeout=settings.AI_TITLE_TIMEOUT_SECONDS,
    )
    if not title:
        return
    stored = await db_async(titles.store_title)(
        job.conversation_id, automatic=job.auto_title, title=title
    )
    if stored:
        # The same frame as the first answer's title: heading and tab title follow.
        html = frames.conversation_title(title)
        await events.publish_safely(events.conv_group(job.conversation_id), events.frame(html))


async def publish_card(feedback_id: int) -> None:
    """Replace an answer's card on every page of its conversation (after its write)."""
    found = await db_async(feedback.card_frame_data)(feedback_id)
    if found is None:
        return
    stored, answer = found
    html = await db_async(frames.feedback_card)(stored, answer)
    await events.publish_safely(events.conv_group(stored.conversation_id), events.frame(html))


async def _finish(job: ReplyJob, *, status: str, metadata: dict[str, Any], error_text: str) -> None:
    """Store how the reply ended (retrying a locked database), then send its final frames."""
    if job.note_answer is not None:  # its first try failed: once more, before the end
        with contextlib.suppress(Exception):
            await _note_answer(job, if_missing=True)
    for attempt in range(1, FINISH_ATTEMPTS + 1):
        # A locked or briefly unreachable database must not leave the reply 'streaming'.
        try:
            message, error = await db_async(replies.reply_finish)(
                message_id=job.message.pk,
                content=job.content,
                status=status,
                metadata=metadata,
                usage_id=job.usage_id,
                error_text=error_text,
            )
            break
        except DatabaseError as exc:
            if attempt == FINISH_ATTEMPTS:
                raise
            log.warning("reply %s: storing its end failed (%s); retrying", job.message.pk, exc)
            await asyncio.sleep(FINISH_RETRY_SECONDS)
    if message is None:
        return
    assert job.broadcast is not None
    await job.broadcast.final(message, error)
    if job.usage_id is not None and replies.is_refunded(status, job.content):
        try:
            await publish_quota(job.user_id)
        except Exception as exc:
            log.warning("reply %s: could not send the quota (%s)", job.message.pk, exc)


async def publish_quota(user_id: int) -> None:
    """Send the user's remaining replies to every socket they have open."""
    html = await db_async(quota.frame_for)(user_id)
    await events.publish(events.user_group(user_id), events.frame(html))
