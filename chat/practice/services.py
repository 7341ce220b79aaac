"""Writes of practice: starting a conversation with a coach, renaming and deleting one."""

from __future__ import annotations

from uuid import UUID

from django.db import models, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.models import User
from chat import events
from chat.conversations import message_create
from chat.models import Conversation, Membership, Message, Persona


def _title_for(persona: Persona | None) -> str:
    # The coach's name until the first answer names it (chat.conversations): no date in a
    # title, where it would stay in the zone it was written in.
    return persona.display_name if persona else _("Practice")


@transaction.atomic
def practice_start(*, user: User, persona: Persona) -> Conversation:
    """Start a practice conversation; the coach's opening line is its first message."""
    conversation = Conversation.objects.create(
        kind=Conversation.Kind.PRACTICE, title=_title_for(persona), persona=persona, owner=user
    )
    Membership.objects.create(conversation=conversation, user=user, role=Membership.Role.OWNER)
    opening = persona.opening_line_for(user.language or translation.get_language() or "")
    if opening:
        message_create(
            conversation=conversation,
            author=None,
            role=Message.Role.ASSISTANT,
            content=opening,
            metadata={"opening": True},
        )
    return conversation


def practice_rename(*, conversation: Conversation, title: str) -> Conversation:
    """Change the title only: a full save would write back a stale last_seq if a reply was
    stored meanwhile, and the next message would then reuse a sequence number."""
    conversation.title = title
    conversation.save(update_fields=["title"])
    return conversation


@transaction.atomic
def practice_delete(*, conversation: Conversation) -> None:
    """Delete a conversation; a reply still being written is stopped (it would talk for nothing)."""
    events.publish_on_commit(events.ctl_group(conversation.pk), events.reply_stop(None))
    conversation.delete()


def practice_finish(*, conversation: Conversation) -> Conversation:
    """End a practice session (its report sums it up); finishing twice keeps the first time."""
    if conversation.finished_at is None:
        conversation.finished_at = timezone.now()
        # Only this field: a full save could write back a stale last_seq (see rename).
        conversation.save(update_fields=["finished_at"])
    return conversation


class NoSuchVersionError(Exception):
    """The message is not an answer with versions in this conversation."""


def versions_of(message: Message) -> list[Message]:
    """An answer's versions, oldest first: the first answer, then each answer again."""
    root_id = message.parent_id or message.pk
    return list(
        Message.objects.filter(conversation_id=message.conversation_id)
        .filter(models.Q(pk=root_id) | models.Q(parent_id=root_id))
        .select_related("feedback")
        .order_by("seq")
    )


@transaction.atomic
def version_show(*, conversation: Conversation, message_id: UUID) -> Message:
    """Show one version of an answer and the path that followed it; hide the shown one's.

    A version hidden by "answer again" (or by this switch) keeps the ids of its path in
    `metadata["path"]`: switching hides the shown version's path (remembering it) and
    shows the chosen one's, so the conversation on screen is always one path.
    """
    message = (
        Message.objects.select_for_update()
        .filter(pk=message_id, conversation=conversation, role=Message.Role.USER)
        .first()
    )
    if message is None:
        raise NoSuchVersionError
    versions = versions_of(message)
    if len(versions) < 2:
        raise NoSuchVersionError
    if message.is_shown:
        return message
    shown = next((v for v in versions if v.is_shown), None)
    if shown is not None:
        path = Message.objects.filter(conversation=conversation, is_shown=True, seq__gte=shown.seq)
        ids = [str(pk) for pk in path.values_list("pk", flat=True)]
        path.update(is_shown=False)
        Message.objects.filter(pk=shown.pk).update(metadata={**shown.metadata, "path": ids})
    wanted = message.metadata.get("path") or [str(message.pk)]
    Message.objects.filter(conversation=conversation, pk__in=wanted).update(is_shown=True)
    return message
