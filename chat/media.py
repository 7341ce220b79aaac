"""Audio files go with their rows: a deleted conversation (CASCADE) leaves no file behind.

A signal, not a service, because a cascade never calls a model's delete(); the file is
removed only after the deleting transaction commits, so a rolled-back delete keeps it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models.fields.files import FieldFile
from django.db.models.signals import post_delete
from django.dispatch import receiver

from chat.models import Recording, SpeechAudio

logger = logging.getLogger(__name__)


def _delete_later(file: FieldFile) -> None:
    name, storage = file.name, file.storage
    if not name:
        return

    def delete() -> None:
        try:
            storage.delete(name)
        except OSError:
            logger.warning("could not delete %s", name, exc_info=True)

    transaction.on_commit(delete)


@receiver(post_delete, sender=SpeechAudio)
@receiver(post_delete, sender=Recording)
def delete_audio_file(sender: Any, instance: SpeechAudio | Recording, **kwargs: Any) -> None:
    """Remove the stored audio of a deleted row."""
    _delete_later(instance.audio)
