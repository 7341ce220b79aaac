"""The activity stream's reading side: a consumer group that stores batches, then acks.

`consume_batch` claims entries left unacked by a consumer that died (XAUTOCLAIM), re-reads
this consumer's own unacked entries (after a restart under the same name), then reads new
ones (XREADGROUP); it stores them in one transaction and acks only after the commit. An
entry stored but not acked (killed in between) is stored again on the next read and the
unique event id makes that a no-op: every event ends up in the table exactly once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from chat.classes import activity

logger = logging.getLogger(__name__)

GROUP = "activity-writers"
CLAIM_IDLE_MS = 30_000  # an entry unacked this long belonged to a consumer that died


def ensure_group(client: Any) -> None:
    """Create the consumer group (and the stream) unless they exist."""
    try:
        client.xgroup_create(activity.stream_name(), GROUP, id="0", mkstream=True)
    except Exception as exc:  # BUSYGROUP: it exists
        if "BUSYGROUP" not in str(exc):
            raise


def _decode(entries: list[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    ids, events = [], []
    for entry_id, fields in entries:
        ids.append(entry_id)
        if not fields:  # trimmed away while pending
            continue
        try:
            events.append(json.loads(fields[activity.STREAM_FIELD]))
        except (KeyError, ValueError):
            logger.warning("activity stream: dropping malformed entry %s", entry_id)
    return ids, events


def consume_batch(
    client: Any, consumer: str, *, count: int = 500, block_ms: int = 1000,
    claim_idle_ms: int = CLAIM_IDLE_MS,
) -> int:  # fmt: skip
    """Store one batch and ack it; returns how many entries were handled."""
    stream = activity.stream_name()
    entries: list[Any] = []
    claimed = client.xautoclaim(stream, GROUP, consumer, claim_idle_ms, "0-0", count=count)
    entries += claimed[1]
    if not entries:
        own = client.xreadgroup(GROUP, consumer, {stream: "0"}, count=count)
        entries += own[0][1] if own else []
    if not entries:
        new = client.xreadgroup(GROUP, consumer, {stream: ">"}, count=count, block=block_ms)
        entries += new[0][1] if new else []
    if not entries:
        return 0
    ids, events = _decode(entries)
    activity.store(events)  # commits
    client.xack(stream, GROUP, *ids)
    return len(ids)


def lag(client: Any) -> dict[str, Any]:
    """The stream's length, entries not yet delivered (lag) and delivered but unacked."""
    stream = activity.stream_name()
    length = client.xlen(stream)
    info = {"stream_length": length, "pending": 0, "lag": length, "consumers": 0}
    try:
        groups = client.xinfo_groups(stream)
    except Exception:
        return info  # no stream yet
    for group in groups:
        if group.get("name") == GROUP:
            info["pending"] = group.get("pending", 0)
            info["consumers"] = group.get("consumers", 0)
            group_lag = group.get("lag")
            info["lag"] = group_lag if group_lag is not None else length
    return info
