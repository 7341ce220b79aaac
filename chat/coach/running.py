"""The replies this process is writing now, by message id (strong references keep tasks alive)."""

from __future__ import annotations

import asyncio
from typing import Any

JOBS: dict[str, Any] = {}  # message id → chat.coach.tasks.ReplyJob


def is_running(message_id: Any) -> bool:
    """True when a task of this process is writing this reply."""
    job = JOBS.get(str(message_id))
    task: asyncio.Task[None] | None = getattr(job, "task", None)
    return task is not None and not task.done()
