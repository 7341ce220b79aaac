"""Store the coach messages' HTML anew after the renderer changed (RENDERER_VERSION)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from chat.conversations import store_html
from chat.models import Message
from chat.rendering import RENDERER_VERSION


class Command(BaseCommand):
    help = (
        "Render again the finished coach messages whose stored HTML was made by another "
        "renderer version (pages render those on the fly until then)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=500, help="messages per transaction")

    def handle(self, *args: Any, **options: Any) -> None:
        stale = (
            Message.objects.filter(role=Message.Role.ASSISTANT)
            .exclude(status=Message.Status.STREAMING)
            .exclude(html_version=RENDERER_VERSION)
            .order_by("pk")
        )
        done = 0
        while True:
            batch = list(stale[: options["batch"]])
            if not batch:
                break
            for message in batch:
                store_html(message)
            Message.objects.bulk_update(batch, ["html", "html_version"])
            done += len(batch)
        self.stdout.write(f"{done} message(s) rendered with renderer version {RENDERER_VERSION}.")
