"""Store the live classes' activity stream in the database (one consumer of the group)."""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from chat.classes import activity, stream


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
        client = activity.client()
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
            handled = stream.consume_batch(
                client,
                name,
                count=options["batch"],
                block_ms=200 if options["once"] else 1000,
                claim_idle_ms=options["claim_idle_ms"],
            )
            if options["once"] and not handled:
                break
