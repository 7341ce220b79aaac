"""Staff tools for people."""

from __future__ import annotations

from typing import ClassVar

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from accounts.models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
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
