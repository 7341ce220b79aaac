"""Writes of practice: starting a conversation with a coach, renaming and deleting one."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from accounts.models import User
from chat import events
from chat.conversations import message_create
from chat.models import Conversation, Membership, Message, Persona


def _title_for(persona: Persona | None) -> str:
    # The coach's name until the first answer names it (chat.conversations): no date in a
    # title, where it would stay in the zone it was written in.
    return persona.name if persona else _("Practice")


@transaction.atomic
def practice_start(*, user: User, persona: Persona) -> Conversation:
    """Start a practice conversation; the coach's opening line is its first message."""
    conversation = Conversation.objects.create(
        kind=Conversation.Kind.PRACTICE, title=_title_for(persona), persona=persona, owner=user
    )
    Membership.objects.create(conversation=conversation, user=user, role=Membership.Role.OWNER)
    if persona.opening_line:
        message_create(
            conversation=conversation,
            author=None,
            role=Message.Role.ASSISTANT,
            content=persona.opening_line,
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
