"""Staff tools: coaches, conversations (read-only messages) and AI usage."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from chat.models import (
    ActivityEvent,
    AIUsage,
    Attendance,
    Class,
    ClassAnswer,
    ClassSession,
    Conversation,
    Feedback,
    Hand,
    Membership,
    Message,
    Persona,
)


@admin.register(Persona)
class PersonaAdmin(admin.ModelAdmin[Persona]):
    list_display = ("name", "category", "english_practice", "is_active", "sort_order", "model")
    list_filter = ("category", "is_active")
    list_editable = ("is_active", "sort_order")
    search_fields = ("name", "name_ko", "description", "system_prompt")
    prepopulated_fields: ClassVar = {"slug": ("name",)}
    fieldsets = (
        (
            None,
            {"fields": ("name", "slug", "category", "english_practice", "is_active", "sort_order")},
        ),
        (_("What learners see"), {"fields": ("description", "opening_line")}),
        (_("In Korean"), {"fields": ("name_ko", "description_ko", "opening_line_ko")}),
        (_("The model"), {"fields": ("system_prompt", "questions", "model", "temperature")}),
    )


class MessageInline(admin.TabularInline[Message, Conversation]):
    model = Message
    fields = ("seq", "role", "kind", "status", "author", "content", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("seq",)
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MembershipInline(admin.TabularInline[Membership, Conversation]):
    model = Membership
    fields = ("user", "role", "joined_at", "last_read_seq")
    readonly_fields = ("joined_at", "last_read_seq")
    raw_id_fields = ("user",)
    extra = 0


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin[Conversation]):
    list_display = ("title", "kind", "owner", "persona", "is_public", "last_activity_at")
    list_filter = ("kind", "is_public", "persona")
    search_fields = ("title", "owner__email", "owner__nickname")
    raw_id_fields = ("owner",)
    readonly_fields = ("id", "last_seq", "created_at", "last_activity_at")
    inlines: ClassVar = [MembershipInline, MessageInline]
    date_hierarchy = "last_activity_at"


@admin.register(AIUsage)
class AIUsageAdmin(admin.ModelAdmin[AIUsage]):
    """Who practises: replies per user per day (refunded ones don't count)."""

    list_display = ("day", "user", "outcome", "refunded", "created_at")
    list_filter = ("day", "outcome", "refunded")
    search_fields = ("user__email", "user__nickname")
    date_hierarchy = "day"
    raw_id_fields = ("user", "message")
    readonly_fields = ("user", "day", "message", "outcome", "created_at")
    change_list_template = "admin/chat/aiusage/change_list.html"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        response = super().changelist_view(request, extra_context)
        if not isinstance(response, TemplateResponse) or response.context_data is None:
            return response  # a redirect (an action ran), not the list
        try:
            qs: QuerySet[AIUsage] = response.context_data["cl"].queryset
        except (AttributeError, KeyError):
            return response
        response.context_data["per_user_day"] = (
            qs.values("day", "user__email", "user__nickname", "user__daily_ai_limit")
            .annotate(counted=Count("id", filter=Q(refunded=False)), total=Count("id"))
            .order_by("-day", "-counted")[:200]
        )
        return response


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin[Feedback]):
    """Feedback on answers, read-only: what the analyser and the model said."""

    list_display = ("created_at", "conversation", "status", "question_number", "model")
    list_filter = ("status", "model")
    search_fields = ("message__content", "conversation__owner__email")
    date_hierarchy = "created_at"
    readonly_fields = (
        "message",
        "conversation",
        "status",
        "question",
        "question_number",
        "question_total",
        "analysis",
        "rubric",
        "strength",
        "improvement",
        "rewrite",
        "corrections",
        "language",
        "model",
        "metadata",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


admin.site.site_header = _("Practalk staff")
admin.site.site_title = _("Practalk staff")


# --- live classes -------------------------------------------------------------------------------


class ClassSessionInline(admin.TabularInline[ClassSession, Class]):
    model = ClassSession
    fields = ("join_code", "state", "current_step", "started_at", "ended_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Class)
class ClassAdmin(admin.ModelAdmin[Class]):
    list_display = ("title", "coach", "seconds_per_question", "created_at")
    search_fields = ("title", "description", "coach__email", "coach__nickname")
    autocomplete_fields = ("coach", "learners")
    inlines: ClassVar = [ClassSessionInline]


class AttendanceInline(admin.TabularInline[Attendance, ClassSession]):
    model = Attendance
    fields = ("user", "joined_at", "online", "last_seen")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(ClassSession)
class ClassSessionAdmin(admin.ModelAdmin[ClassSession]):
    list_display = ("klass", "join_code", "state", "current_step", "started_at", "ended_at")
    list_filter = ("state",)
    search_fields = ("join_code", "klass__title")
    readonly_fields = ("conversation", "join_code", "created_at")
    inlines: ClassVar = [AttendanceInline]


@admin.register(Attendance)
class AttendanceAdmin(admin.ModelAdmin[Attendance]):
    list_display = ("session", "user", "online", "joined_at", "last_seen")
    list_filter = ("online",)
    search_fields = ("user__email", "user__nickname", "session__join_code")


@admin.register(ClassAnswer)
class ClassAnswerAdmin(admin.ModelAdmin[ClassAnswer]):
    list_display = ("session", "user", "step", "ai_status", "updated_at")
    list_filter = ("ai_status",)
    search_fields = ("text", "user__email", "session__join_code")
    readonly_fields = ("analysis", "ai_feedback", "ai_usage")


@admin.register(Hand)
class HandAdmin(admin.ModelAdmin[Hand]):
    list_display = ("session", "user", "step", "state", "raised_at", "closed_at")
    list_filter = ("state",)
    search_fields = ("note", "user__email", "session__join_code")


@admin.register(ActivityEvent)
class ActivityEventAdmin(admin.ModelAdmin[ActivityEvent]):
    list_display = ("at", "kind", "session", "user", "step")
    list_filter = ("kind",)
    search_fields = ("session__join_code", "user__email")
    readonly_fields = ("event_id", "session", "user", "kind", "step", "data", "at", "stored_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
