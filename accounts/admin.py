"""Staff tools for people."""

from __future__ import annotations

from typing import ClassVar

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from accounts.models import GatewayAccount, User


@admin.register(User)
class UserAdmin(BaseUserAdmin[User]):
    """Users by e-mail; staff can grant a learner more AI replies a day."""

    ordering = ("email",)
    list_display = ("email", "nickname", "role", "organisation", "daily_ai_limit", "is_staff")
    list_filter = ("role", "is_staff", "is_active")
    list_editable = ("daily_ai_limit",)
    search_fields = ("email", "nickname", "organisation")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (
            _("Profile"),
            {"fields": ("nickname", "role", "organisation", "language", "daily_ai_limit")},
        ),
        (
            _("Permissions"),
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        (_("Dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "nickname", "password1", "password2")}),
    )
    readonly_fields: ClassVar = ["last_login", "date_joined"]


@admin.register(GatewayAccount)
class GatewayAccountAdmin(admin.ModelAdmin[GatewayAccount]):
    """Which account each gateway user id reaches (created on the gateway user's first visit)."""

    list_display = ("gateway_id", "user", "created_at")
    search_fields = ("gateway_id", "user__email", "user__nickname")
    raw_id_fields = ("user",)
    readonly_fields = ("created_at",)
