"""Conversations (practice with the AI coach, or live rooms), their members and messages."""

from __future__ import annotations

import secrets
import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Persona(models.Model):
    """An AI coach, managed by staff in the admin."""

    class Category(models.TextChoices):
        INTERVIEW = "interview", _("Job interview")
        CONVERSATION = "conversation", _("English conversation")
        MEDICAL = "medical", _("Medical Q&A")
        GENERAL = "general", _("General")

    name = models.CharField(_("name"), max_length=80)
    slug = models.SlugField(_("slug"), max_length=80, unique=True)
    category = models.CharField(
        _("category"), max_length=16, choices=Category, default=Category.GENERAL
    )
    description = models.TextField(_("description"), blank=True)
    system_prompt = models.TextField(_("system prompt"))
    opening_line = models.TextField(_("opening line"), blank=True)
    questions = models.TextField(
        _("question bank"), blank=True, help_text=_("One question per line, asked in order.")
    )
    model = models.CharField(
        _("model override"), max_length=100, blank=True, help_text=_("Empty: OPENAI_MODEL.")
    )
    temperature = models.FloatField(_("temperature"), null=True, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    sort_order = models.PositiveSmallIntegerField(_("order"), default=0)

    class Meta:
        ordering: ClassVar = ["sort_order", "name"]
        verbose_name = _("persona")
        verbose_name_plural = _("personas")

    def __str__(self) -> str:
        return self.name

    @property
    def question_bank(self) -> list[str]:
        """The questions, one per non-empty line."""
        return [line.strip() for line in self.questions.splitlines() if line.strip()]


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def practice(self) -> ConversationQuerySet:
        return self.filter(kind=Conversation.Kind.PRACTICE)

    def rooms(self) -> ConversationQuerySet:
        return self.filter(kind=Conversation.Kind.ROOM)


def new_invite_code() -> str:
    """A random, URL-safe invite code."""
    return secrets.token_urlsafe(12)


class Conversation(models.Model):
    """A practice conversation with the AI coach, or a live room."""

    class Kind(models.TextChoices):
        PRACTICE = "practice", _("Practice")
        ROOM = "room", _("Room")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind, default=Kind.PRACTICE)
    title = models.CharField(_("title"), max_length=120)
    persona = models.ForeignKey(
        Persona, verbose_name=_("persona"), null=True, blank=True, on_delete=models.SET_NULL
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        on_delete=models.CASCADE,
        related_name="owned_conversations",
    )
    topic = models.CharField(_("topic"), max_length=200, blank=True)
    is_public = models.BooleanField(_("public"), default=False)
    invite_code = models.CharField(
        _("invite code"), max_length=32, unique=True, default=new_invite_code
    )
    # The sequence number of the newest message; each message takes the next one.
    last_seq = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    last_activity_at = models.DateTimeField(_("last activity"), default=timezone.now)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering: ClassVar = ["-last_activity_at"]
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        indexes: ClassVar = [
            models.Index(fields=["owner", "kind", "-last_activity_at"]),
            models.Index(fields=["kind", "is_public", "-last_activity_at"]),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_room(self) -> bool:
        return self.kind == self.Kind.ROOM

    @property
    def group_name(self) -> str:
        """The channel-layer group of every socket open on this conversation."""
        return f"conv.{self.pk.hex}"


class Membership(models.Model):
    """A person in a conversation."""

    class Role(models.TextChoices):
        OWNER = "owner", _("Owner")
        MEMBER = "member", _("Member")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(_("role"), max_length=16, choices=Role, default=Role.MEMBER)
    joined_at = models.DateTimeField(_("joined"), default=timezone.now)
    # The seq of the newest message this member has seen.
    last_read_seq = models.PositiveBigIntegerField(default=0)
    last_read = models.DateTimeField(_("last read"), null=True, blank=True)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["conversation", "user"], name="unique_membership"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.conversation}"


class RoomBan(models.Model):
    """Someone the owner removed from a public room: they cannot join it again until lifted."""

    room = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="bans")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="room_bans"
    )
    created_at = models.DateTimeField(_("banned"), default=timezone.now)

    class Meta:
        verbose_name = _("room ban")
        verbose_name_plural = _("room bans")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["room", "user"], name="unique_room_ban"),
        ]

    def __str__(self) -> str:
        return f"{self.user} banned from {self.room}"


class Message(models.Model):
    """One message: from a person, from the AI coach, or a system notice."""

    class Role(models.TextChoices):
        USER = "user", _("User")
        ASSISTANT = "assistant", _("AI coach")
        SYSTEM = "system", _("System")

    class Kind(models.TextChoices):
        TEXT = "text", _("Text")
        NOTICE = "notice", _("Notice")
        ERROR = "error", _("Error")

    class Status(models.TextChoices):
        STREAMING = "streaming", _("Streaming")
        COMPLETE = "complete", _("Complete")
        STOPPED = "stopped", _("Stopped")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    seq = models.PositiveBigIntegerField(_("sequence"))
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
    )
    role = models.CharField(_("role"), max_length=16, choices=Role, default=Role.USER)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind, default=Kind.TEXT)
    content = models.TextField(_("content"), blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.COMPLETE)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    # Moved on each save of a growing reply: one left 'streaming' and long unmoved was
    # orphaned by a process that died (SIGKILL, power loss).
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        ordering: ClassVar = ["seq"]
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="unique_message_seq"),
        ]
        indexes: ClassVar = [
            models.Index(fields=["conversation", "created_at"]),
            models.Index(
                fields=["status"],
                name="chat_message_streaming_idx",
                condition=models.Q(status="streaming"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"

    @property
    def dom_id(self) -> str:
        return f"message-{self.pk}"


class AIUsage(models.Model):
    """The quota ledger: one row per AI reply started; refunded rows do not count."""

    class Outcome(models.TextChoices):
        PENDING = "pending", _("Pending")
        COMPLETE = "complete", _("Complete")
        STOPPED = "stopped", _("Stopped")
        FAILED = "failed", _("Failed")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ai_usage"
    )
    day = models.DateField(_("day"))
    message = models.OneToOneField(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage"
    )
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=Outcome, default=Outcome.PENDING
    )
    refunded = models.BooleanField(_("refunded"), default=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("AI usage")
        verbose_name_plural = _("AI usage")
        indexes: ClassVar = [models.Index(fields=["user", "day"])]

    def __str__(self) -> str:
        return f"{self.user} {self.day} {self.outcome}"


class Connection(models.Model):
    """An open websocket: presence, per-user socket caps, heartbeats."""

    channel_name = models.CharField(max_length=200, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="connections"
    )
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="connections"
    )
    connected_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["conversation", "last_seen"]),
            models.Index(fields=["user", "last_seen"]),
        ]

    def __str__(self) -> str:
        return self.channel_name
