"""Store replies orphaned by a process that died (SIGKILL, power loss) as interrupted.

Pages do this by themselves for the conversation they open; run this from cron to tidy
the rest (and to refund their quota credit at once).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from chat.coach import replies


class Command(BaseCommand):
    help = "Store replies left 'streaming' by a process that died as failed (interrupted)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            default=None,
            help="seconds without a save (default: REPLY_STALE_SECONDS or the model timeout)",
        )

    def handle(self, *args: Any, older_than: float | None, **options: Any) -> None:
        count = replies.recover_interrupted(older_than_seconds=older_than)
        self.stdout.write(f"{count} interrupted repl{'y' if count == 1 else 'ies'} stored.")
