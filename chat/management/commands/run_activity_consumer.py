"""Store the live classes' activity stream in the database (one consumer of the group)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections

from chat.classes import activity, stream

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Read the activity Redis Stream in a consumer group and store it in batches."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--name", default="", help="Consumer name (default: host-pid).")
        parser.add_argument("--batch", type=int, default=500, help="Entries per batch.")
        parser.add_argument("--once", action="store_true", help="Drain what is there, then exit.")
        parser.add_argument(
            "--claim-idle-ms",
            type=int,
            default=stream.CLAIM_IDLE_MS,
            help="Take over entries another consumer left unacked this long.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not activity.redis_url():
            raise CommandError("ACTIVITY_REDIS_URL (or REDIS_URL) is not set.")
        import redis

        # Its reads block for up to a second: a longer socket timeout than the live path's.
        client = redis.Redis.from_url(
            activity.redis_url(), socket_timeout=10, socket_connect_timeout=5, decode_responses=True
        )
        stream.ensure_group(client)
        name = options["name"] or f"{socket.gethostname()}-{os.getpid()}"
        stopping = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(f"activity consumer {name} reading {activity.stream_name()}")
        self.stdout.flush()
        while not stopping:
            close_old_connections()
            try:
                handled = stream.consume_batch(
                    client,
                    name,
                    count=options["batch"],
                    block_ms=200 if options["once"] else 1000,
                    claim_idle_ms=options["claim_idle_ms"],
                )
            except (redis.RedisError, DatabaseError) as exc:
                # Nothing was acked: the same entries are read again once both are back.
                logger.warning("activity consumer: %s; retrying in a second", exc)
                time.sleep(1)
                continue
            if options["once"] and not handled:
                break
