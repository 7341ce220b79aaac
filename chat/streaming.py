"""The reply pipeline: model deltas → time-batched frames → the conversation's sockets.

A reply runs as an asyncio task owned by the process, not by a socket: closing
the tab does not stop it, and it saves the text as it grows. Stop and snapshot
requests reach it through the conversation's control group, from any process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError
from django.utils.translation import gettext as _

from chat import frames, quota, services
from chat.models import Message
from chat.providers import ProviderError, ReplyRequest, get_provider

log = logging.getLogger(__name__)


class TokenBatcher:
    """Collects deltas and flushes them at most once per `interval` seconds.

    The first delta after a quiet spell goes out at once (no added latency to the
    first token); later ones are joined into one frame per interval.
    """

    def __init__(self, send: Callable[[str], Awaitable[None]], interval: float) -> None:
        self._send = send
        self._interval = interval
        self._parts: list[str] = []
        self._last_flush = float("-inf")
        self._timer: asyncio.Task[None] | None = None
        self.frames = 0

    async def add(self, text: str) -> None:
        """Queue a delta; flush now if the last flush was long enough ago."""
        if not text:
            return
        self._parts.append(text)
        wait = self._last_flush + self._interval - time.monotonic()
        if wait <= 0:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_later(wait))

    async def _flush_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._timer = None
        await self.flush()

    async def flush(self) -> None:
        """Send whatever is queued."""
        if not self._parts:
            return
        text = "".join(self._parts)
        self._parts.clear()
        self._last_flush = time.monotonic()
        self.frames += 1
        await self._send(text)

    def discard(self) -> None:
        """Drop what is queued and the pending timer (a snapshot or final frame supersedes it)."""
        self._parts.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


@dataclass
class ReplyJob:
    """One reply being generated."""

    message: Message
    conversation_id: Any
    user_id: int
    usage_id: int | None
    request: ReplyRequest
    coach_name: str = ""
    parts: list[str] = field(default_factory=list)
    stop_requested: bool = False
    task: asyncio.Task[None] | None = None
    snapshot_requested: bool = False
    # Set once the reply's own frame went to the group: token frames must not overtake it.
    announced: asyncio.Event = field(default_factory=asyncio.Event)
    # Set once the model stream ended: from then on the reply is storing how it ended.
    finishing: bool = False

    @property
    def content(self) -> str:
        return "".join(self.parts)


# Replies running in this process, by message id (strong references keep the tasks alive).
JOBS: dict[str, ReplyJob] = {}
CONTROL_RETRY_SECONDS = 0.5
FINISH_ATTEMPTS = 5
FINISH_RETRY_SECONDS = 1.0
# The shortest flush interval honoured: below it, a model at full speed sends a frame per
# token, ~4x the CPU per token, and fills sockets' channels faster than they drain.
MIN_FLUSH_INTERVAL = 0.01


def flush_interval() -> float:
    """STREAM_FLUSH_INTERVAL, raised to MIN_FLUSH_INTERVAL; 0 stays 0 (a frame per token).

    0 is kept for the bench and tests that want every token as its own frame: token frames
    are numbered, so one that a full channel dropped makes the page ask for a snapshot.
    """
    interval = float(settings.STREAM_FLUSH_INTERVAL)
    return 0.0 if interval <= 0 else max(MIN_FLUSH_INTERVAL, interval)


def start_reply(job: ReplyJob) -> asyncio.Task[None]:
    """Run a reply in the background of this process's event loop."""
    key = str(job.message.pk)
    JOBS[key] = job
    # Started eagerly: the reply runs up to its first real wait (the model request on the
    # wire) before the caller goes on rendering and publishing the exchange's frames.
    job.task = asyncio.eager_task_factory(
        asyncio.get_running_loop(), run_reply(job), name=f"reply-{key}"
    )
    job.task.add_done_callback(lambda _t: JOBS.pop(key, None))
    return job.task


def is_running(message_id: Any) -> bool:
    """True when a task of this process is writing this reply."""
    job = JOBS.get(str(message_id))
    return job is not None and job.task is not None and not job.task.done()


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
        if not job.finishing:  # one that is already storing its end is left to finish
            job.task.cancel()  # type: ignore[union-attr]
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)
    return len(tasks)


async def request_stop(conversation_id: Any, message_id: Any | None) -> None:
    """Stop a reply wherever it runs: here at once, elsewhere through the control group."""
    if message_id is not None and stop_local(message_id):
        return
    await services.publish(
        services.ctl_group(conversation_id),
        {"type": "reply.stop", "message_id": str(message_id) if message_id else None},
    )


async def request_snapshot(conversation_id: Any) -> None:
    """Ask the running replies of a conversation to send their full current text."""
    local = [j for j in JOBS.values() if j.conversation_id == conversation_id]
    for job in local:
        job.snapshot_requested = True
    await services.publish(services.ctl_group(conversation_id), {"type": "reply.snapshot"})


async def _publish(group: str, event: dict[str, Any]) -> bool:
    """Send to a group; a channel-layer failure (Redis down) loses the frame, never the reply.

    Pages that missed frames catch up from the database when they reconnect or resync.
    """
    try:
        await services.publish(group, event)
    except Exception as exc:
        log.warning("channel layer: could not publish to %s (%s)", group, exc)
        return False
    return True


async def _listen_control(job: ReplyJob, channel: str) -> None:
    layer = get_channel_layer()
    group = services.ctl_group(job.conversation_id)
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
        elif kind == "reply.snapshot":
            job.snapshot_requested = True


async def run_reply(job: ReplyJob) -> None:
    """Stream one reply from the model to the conversation, saving it as it grows."""
    message = job.message
    group = services.conv_group(job.conversation_id)
    message_id = str(message.pk)
    layer = get_channel_layer()
    started = time.monotonic()
    first_token_at: float | None = None
    status = Message.Status.COMPLETE
    error_text = ""
    error_code = ""
    stream = None

    # Token frames are numbered (`part` 1, 2, …) so a page notices one that never arrived
    # (group_send drops silently past a channel's capacity) and asks for a snapshot instead
    # of appending after a hole. A snapshot carries the number of the last part it includes.
    parts_sent = 0
    snapshots_sent = 0
    sent_upto = 0  # how many of job.parts a frame (token frame or snapshot) already carried
    send_lock = asyncio.Lock()  # the timer's flush and the loop's must not swap numbers

    async def send_tokens(_batch: str) -> None:
        # The text is taken from job.parts, not from the batch: a snapshot sent while this
        # flush waited may already carry it, and a page must not get it twice.
        nonlocal parts_sent, sent_upto
        async with send_lock:
            await job.announced.wait()
            if job.snapshot_requested:
                await send_snapshot()
                return
            end = len(job.parts)
            if end == sent_upto:
                return
            text = "".join(job.parts[sent_upto:end])
            sent_upto = end
            parts_sent += 1
            await _publish(
                group,
                services.frame_event(
                    frames.tokens(message_id, text), stream=message_id, part=parts_sent
                ),
            )

    async def send_snapshot() -> None:
        nonlocal sent_upto, snapshots_sent
        job.snapshot_requested = False
        batcher.discard()
        sent_upto = len(job.parts)
        snapshots_sent += 1
        message.content = job.content
        html = frames.message_replaced(message, coach_name=job.coach_name)
        await _publish(group, services.frame_event(html, snapshot=message_id, part=parts_sent))

    batcher = TokenBatcher(send_tokens, flush_interval())
    # The default prefix on purpose: channels_redis has one receive lock per process and the
    # holder waits only on its own prefix's key, so a "reply." channel would starve every
    # socket of this process until the reply ended (measured by bench/fanout.py).
    control_channel = await layer.new_channel()
    listener = asyncio.create_task(_listen_control(job, control_channel))
    save_task: asyncio.Task[None] | None = None
    last_save = time.monotonic()
    try:
        provider = get_provider()
        stream = provider.stream(job.request)
        async for delta in stream:
            if first_token_at is None:
                first_token_at = time.monotonic()
            job.parts.append(delta)
            await batcher.add(delta)
            now = time.monotonic()
            if now - last_save >= settings.STREAM_SAVE_INTERVAL and (
                save_task is None or save_task.done()
            ):
                # Saved off the hot path: the loop keeps relaying tokens meanwhile.
                last_save = now
                save_task = asyncio.create_task(
                    database_sync_to_async(services.reply_checkpoint)(message.pk, job.content)
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
    except Exception as exc:  # a bug must still end the reply cleanly
        log.exception("reply %s crashed", message_id)
        status = Message.Status.FAILED
        error_code = "unknown"
        error_text = _("Something went wrong while the coach was answering.")
        del exc
    finally:
        job.finishing = True
        listener.cancel()
        if stream is not None:
            # Closes the HTTP response: the model server sees us go and stops generating.
            with contextlib.suppress(Exception):
                await asyncio.shield(stream.aclose())
    batcher.discard()
    with contextlib.suppress(BaseException):
        await listener
    if save_task is not None:
        with contextlib.suppress(BaseException):
            await save_task
    await _finish(
        job,
        status=status,
        error_code=error_code,
        error_text=error_text,
        started=started,
        first_token_at=first_token_at,
        stream=stream,
        batch_frames=parts_sent + snapshots_sent,
    )
    with contextlib.suppress(Exception):
        await layer.group_discard(services.ctl_group(job.conversation_id), control_channel)


async def _finish(
    job: ReplyJob,
    *,
    status: str,
    error_code: str,
    error_text: str,
    started: float,
    first_token_at: float | None,
    stream: Any,
    batch_frames: int,
) -> None:
    ended = time.monotonic()
    await job.announced.wait()
    metadata: dict[str, Any] = {
        "model": getattr(stream, "model", "") or job.request.model or "",
        "duration_ms": round((ended - started) * 1000, 1),
        "ttft_ms": round((first_token_at - started) * 1000, 1) if first_token_at else None,
        "prompt_tokens": getattr(stream, "prompt_tokens", None),
        "completion_tokens": getattr(stream, "completion_tokens", None),
        "frames": batch_frames,
    }
    if error_code:
        metadata["error"] = error_code
    for attempt in range(1, FINISH_ATTEMPTS + 1):
        # A locked or briefly unreachable database must not leave the reply 'streaming'.
        try:
            message, error = await database_sync_to_async(services.reply_finish)(
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
    group = services.conv_group(job.conversation_id)
    await _publish(
        group,
        services.frame_event(
            frames.message_replaced(message, coach_name=job.coach_name), final=str(message.pk)
        ),
    )
    if error is not None:
        await _publish(group, services.frame_event(frames.message_appended(error), seq=error.seq))
    if status == Message.Status.FAILED and job.usage_id is not None:
        try:
            await publish_quota(job.user_id)
        except Exception as exc:
            log.warning("reply %s: could not send the quota (%s)", job.message.pk, exc)


async def publish_quota(user_id: int) -> None:
    """Send the user's remaining replies to every socket they have open."""

    def read() -> str:
        from accounts.models import User

        user = User.objects.get(pk=user_id)
        return frames.quota(quota.remaining(user), quota.daily_limit(user), quota.reset_at())

    html = await database_sync_to_async(read)()
    await services.publish(services.user_group(user_id), services.frame_event(html))
