"""Conversations (practice with the AI coach, or live rooms), their members and messages."""

from __future__ import annotations

import secrets
import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone, translation
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
    english_practice = models.BooleanField(
        _("English practice"),
        default=False,
        help_text=_(
            "On: the coach always speaks English (the learner practises it). "
            "Off: the coach answers in the learner's interface language."
        ),
    )
    # The Korean wording shown to people reading the interface in Korean (empty: the English).
    name_ko = models.CharField(_("name (Korean)"), max_length=80, blank=True)
    description_ko = models.TextField(_("description (Korean)"), blank=True)
    opening_line_ko = models.TextField(
        _("opening line (Korean)"),
        blank=True,
        help_text=_("Not used by English-practice coaches."),
    )

    class Meta:
        ordering: ClassVar = ["sort_order", "name"]
        verbose_name = _("persona")
        verbose_name_plural = _("personas")

    def __str__(self) -> str:
        return self.name

    def _in_language(self, english: str, korean: str) -> str:
        language = (translation.get_language() or "").split("-")[0]
        return korean if language == "ko" and korean else english

    @property
    def display_name(self) -> str:
        """The name in the active language (the English one when no translation is given)."""
        return self._in_language(self.name, self.name_ko)

    @property
    def display_description(self) -> str:
        """The description in the active language."""
        return self._in_language(self.description, self.description_ko)

    def opening_line_for(self, language: str) -> str:
        """The opening line for a learner reading `language` (English practice stays English)."""
        if language.split("-")[0] == "ko" and self.opening_line_ko and not self.english_practice:
            return self.opening_line_ko
        return self.opening_line

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
        CLASS = "class", _("Live class")

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
    # When the learner pressed "Finish practice" (its report is then the session's summary).
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

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
    # A finished coach message's sanitised HTML, rendered once when it was stored, and the
    # renderer version that made it (chat.rendering.RENDERER_VERSION): pages with long
    # histories show it without rendering Markdown again. Stale versions are rendered on the
    # fly until `manage.py rerender_messages` stores them anew.
    html = models.TextField(blank=True, editable=False)
    html_version = models.PositiveSmallIntegerField(default=0, editable=False)
    # Versions of an answer (answer again, edit and resend): the message this one re-answers.
    parent = models.ForeignKey(
        "self",
        verbose_name=_("version of"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="versions",
    )
    # False for a version (and the replies under it) that another version replaced on screen.
    is_shown = models.BooleanField(_("shown"), default=True)

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


class Feedback(models.Model):
    """Feedback on one learner answer: the analysis at once, then (with a model) the rubric."""

    class Status(models.TextChoices):
        ANALYSED = "analysed", _("Analysed")
        COMPLETE = "complete", _("Complete")
        FAILED = "failed", _("Failed")

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="feedback")
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="feedback"
    )
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.ANALYSED)
    question = models.TextField(_("question"), blank=True)
    question_number = models.PositiveSmallIntegerField(_("question number"), null=True, blank=True)
    question_total = models.PositiveSmallIntegerField(_("questions"), null=True, blank=True)
    analysis = models.JSONField(_("analysis"), default=dict, blank=True)
    # {axis: {"score": 1-5, "reason": str}}: structure, relevance, specificity, clarity, language.
    rubric = models.JSONField(_("rubric"), default=dict, blank=True)
    strength = models.TextField(_("strength"), blank=True)
    improvement = models.TextField(_("improvement"), blank=True)
    rewrite = models.TextField(_("rewritten sentence"), blank=True)
    corrections = models.JSONField(_("corrections"), default=list, blank=True)
    language = models.CharField(_("language"), max_length=16, blank=True)
    model = models.CharField(_("model"), max_length=100, blank=True)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        verbose_name = _("feedback")
        verbose_name_plural = _("feedback")
        indexes: ClassVar = [models.Index(fields=["conversation", "created_at"])]

    def __str__(self) -> str:
        return f"{self.status}: {self.message_id}"

    @property
    def dom_id(self) -> str:
        return f"feedback-{self.message_id}"


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


def _speech_path(instance: SpeechAudio, filename: str) -> str:
    return f"speech/{instance.message.conversation_id}/{instance.message_id}{_suffix(filename)}"


def _recording_path(instance: Recording, filename: str) -> str:
    return f"recordings/{instance.conversation_id}/{uuid.uuid4().hex}{_suffix(filename)}"


def _suffix(filename: str) -> str:
    dot = filename.rfind(".")
    return filename[dot:][:8] if dot > 0 else ""


class SpeechAudio(models.Model):
    """A coach message read aloud by the model server, synthesised once and kept with it."""

    message = models.OneToOneField(
        Message, on_delete=models.CASCADE, related_name="speech_audio", primary_key=True
    )
    audio = models.FileField(_("audio"), upload_to=_speech_path)
    content_type = models.CharField(max_length=60, default="audio/mpeg")
    voice = models.CharField(max_length=40, blank=True)
    model = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("speech audio")
        verbose_name_plural = _("speech audio")

    def __str__(self) -> str:
        return f"speech of {self.message_id}"


class Recording(models.Model):
    """A dictated answer's audio, kept only for a learner who opted in."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="recordings"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recordings"
    )
    audio = models.FileField(_("audio"), upload_to=_recording_path)
    content_type = models.CharField(max_length=60)
    duration_seconds = models.FloatField(null=True, blank=True)
    transcript = models.TextField(blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("recording")
        verbose_name_plural = _("recordings")

    def __str__(self) -> str:
        return f"recording {self.pk} in {self.conversation_id}"


# --- live coached classes -----------------------------------------------------------------------

# Join codes: no 0/O and no 1/I/L, so a code read off a projector is typed right.
JOIN_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
JOIN_CODE_LENGTH = 6


def new_join_code() -> str:
    """Six characters from the unambiguous alphabet."""
    return "".join(secrets.choice(JOIN_CODE_ALPHABET) for _ in range(JOIN_CODE_LENGTH))


class Class(models.Model):
    """A coach's practice class: a question set and the learners enrolled in it."""

    coach = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("coach"),
        on_delete=models.CASCADE,
        related_name="coached_classes",
    )
    title = models.CharField(_("title"), max_length=120)
    description = models.TextField(_("description"), blank=True)
    persona = models.ForeignKey(
        Persona,
        verbose_name=_("question bank from"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
    )
    questions = models.TextField(_("questions"), help_text=_("One question per line."))
    seconds_per_question = models.PositiveIntegerField(
        _("seconds per question"), null=True, blank=True
    )
    learners = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("learners"),
        blank=True,
        related_name="enrolled_classes",
    )
    invite_code = models.CharField(
        _("invite code"), max_length=32, unique=True, default=new_invite_code
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        ordering: ClassVar = ["-created_at"]
        verbose_name = _("class")
        verbose_name_plural = _("classes")

    def __str__(self) -> str:
        return self.title

    @property
    def question_list(self) -> list[str]:
        """The questions, one per non-empty line."""
        return [line.strip() for line in self.questions.splitlines() if line.strip()]


class ClassSession(models.Model):
    """One live run of a class: waiting → running ⇄ paused → ended."""

    class State(models.TextChoices):
        WAITING = "waiting", _("Waiting")
        RUNNING = "running", _("Running")
        PAUSED = "paused", _("Paused")
        ENDED = "ended", _("Ended")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    klass = models.ForeignKey(
        Class, verbose_name=_("class"), on_delete=models.CASCADE, related_name="sessions"
    )
    # The session's socket: learners and the coach are its members.
    conversation = models.OneToOneField(
        Conversation, on_delete=models.CASCADE, related_name="class_session"
    )
    join_code = models.CharField(
        _("join code"), max_length=JOIN_CODE_LENGTH, unique=True, default=new_join_code
    )
    questions = models.JSONField(_("questions"), default=list)
    seconds_per_question = models.PositiveIntegerField(null=True, blank=True)
    state = models.CharField(_("state"), max_length=16, choices=State, default=State.WAITING)
    current_step = models.PositiveIntegerField(_("current question"), default=0)  # 0: none yet
    step_started_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at"]
        verbose_name = _("live session")
        verbose_name_plural = _("live sessions")

    def __str__(self) -> str:
        return f"{self.klass} {self.join_code}"

    @property
    def total_steps(self) -> int:
        return len(self.questions)

    @property
    def question(self) -> str:
        """The current question ("" before the first)."""
        if 1 <= self.current_step <= len(self.questions):
            return str(self.questions[self.current_step - 1])
        return ""


class Attendance(models.Model):
    """A learner in a live session: joined when, online now, last heartbeat."""

    session = models.ForeignKey(ClassSession, on_delete=models.CASCADE, related_name="attendances")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attendances"
    )
    joined_at = models.DateTimeField(_("joined"), default=timezone.now)
    last_seen = models.DateTimeField(_("last seen"), default=timezone.now)
    online = models.BooleanField(_("online"), default=False)
    first_seen_at = models.DateTimeField(null=True, blank=True)  # their page first opened
    connections = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name = _("attendance")
        verbose_name_plural = _("attendances")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["session", "user"], name="unique_attendance"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.session}"


class ClassAnswer(models.Model):
    """A learner's answer to one question of a session (answering again replaces it)."""

    class AIStatus(models.TextChoices):
        NONE = "", _("Not asked")
        PENDING = "pending", _("Pending")
        COMPLETE = "complete", _("Complete")
        FAILED = "failed", _("Failed")

    session = models.ForeignKey(ClassSession, on_delete=models.CASCADE, related_name="answers")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="class_answers"
    )
    step = models.PositiveIntegerField(_("question"))
    text = models.TextField(_("answer"))
    analysis = models.JSONField(_("analysis"), default=dict, blank=True)
    # Optional AI feedback the learner asked for (one unit of their own quota): the rubric
    # as `chat.coach.rubric` validated it, how the request went, and its ledger row.
    ai_status = models.CharField(
        _("AI feedback"), max_length=16, choices=AIStatus, default=AIStatus.NONE, blank=True
    )
    ai_feedback = models.JSONField(_("AI feedback rubric"), default=dict, blank=True)
    ai_usage = models.ForeignKey(
        AIUsage,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="class_answers",
        verbose_name=_("AI usage"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        ordering: ClassVar = ["step", "created_at"]
        verbose_name = _("class answer")
        verbose_name_plural = _("class answers")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["session", "user", "step"], name="unique_class_answer"),
        ]

    def __str__(self) -> str:
        return f"{self.user} Q{self.step}"


class Hand(models.Model):
    """A raised hand (a help request), until lowered by the learner or resolved by the coach."""

    class State(models.TextChoices):
        RAISED = "raised", _("Raised")
        LOWERED = "lowered", _("Lowered")
        RESOLVED = "resolved", _("Resolved")

    session = models.ForeignKey(ClassSession, on_delete=models.CASCADE, related_name="hands")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="hands"
    )
    step = models.PositiveIntegerField(_("question"), default=0)
    note = models.CharField(_("note"), max_length=200, blank=True)
    state = models.CharField(_("state"), max_length=16, choices=State, default=State.RAISED)
    raised_at = models.DateTimeField(_("raised"), default=timezone.now)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering: ClassVar = ["raised_at"]
        verbose_name = _("raised hand")
        verbose_name_plural = _("raised hands")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["session", "user"],
                condition=models.Q(state="raised"),
                name="one_raised_hand",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.state})"

    @property
    def wait_seconds(self) -> float | None:
        """How long the hand was up (None while it still is)."""
        if self.closed_at is None:
            return None
        return (self.closed_at - self.raised_at).total_seconds()


class ActivityEvent(models.Model):
    """The activity ledger of live sessions: one row per event, written exactly once."""

    event_id = models.UUIDField(unique=True, editable=False)
    session = models.ForeignKey(ClassSession, on_delete=models.CASCADE, related_name="activity")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    kind = models.CharField(_("event"), max_length=32)
    step = models.PositiveIntegerField(_("question"), default=0)
    data = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(_("at"))
    stored_at = models.DateTimeField(_("stored"), default=timezone.now)

    class Meta:
        ordering: ClassVar = ["at", "id"]
        verbose_name = _("activity event")
        verbose_name_plural = _("activity events")
        indexes: ClassVar = [models.Index(fields=["session", "at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.at:%H:%M:%S}"
