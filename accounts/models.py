"""The Practalk user: e-mail is the login, nickname is what others see."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _


class EmailUserManager(UserManager["User"]):
    """Manager for a user model whose login is the e-mail address."""

    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> User:
        # Case-insensitive login: "Kim@Example.com" and "kim@example.com" are one person.
        return self.get(email__iexact=username)

    def _create_user(self, email: str, password: str | None, **extra: Any) -> User:
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(  # type: ignore[override]
        self, email: str, password: str | None = None, **extra: Any
    ) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(  # type: ignore[override]
        self, email: str, password: str | None = None, **extra: Any
    ) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)


def normalize_email(email: str) -> str:
    """Lower-case the whole address so uniqueness is case-insensitive."""
    return (email or "").strip().lower()


class User(AbstractUser):
    """A learner or a coach. Signs in with e-mail; shown to others by nickname."""

    class Role(models.TextChoices):
        LEARNER = "learner", _("Learner")
        COACH = "coach", _("Coach")

    username = None  # type: ignore[assignment]
    first_name = None  # type: ignore[assignment]
    last_name = None  # type: ignore[assignment]
    email = models.EmailField(_("e-mail address"), unique=True)
    nickname = models.CharField(_("nickname"), max_length=40)
    role = models.CharField(_("role"), max_length=16, choices=Role, default=Role.LEARNER)
    organisation = models.CharField(_("organisation or department"), max_length=120, blank=True)
    daily_ai_limit = models.PositiveIntegerField(
        _("daily AI replies"),
        null=True,
        blank=True,
        help_text=_("Leave empty to use the site default (AI_DAILY_LIMIT)."),
    )
    language = models.CharField(
        _("language"),
        max_length=8,
        choices=settings.LANGUAGES,
        blank=True,
        help_text=_("Empty: the language of your browser."),
    )

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = ["nickname"]

    objects = EmailUserManager()  # type: ignore[misc]

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints: ClassVar = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.display_name

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = normalize_email(self.email)
        if not self.nickname:
            self.nickname = self.email.split("@", 1)[0][:40]
        super().save(*args, **kwargs)

    @property
    def display_name(self) -> str:
        """The name other people see."""
        return self.nickname or self.email.split("@", 1)[0]

    def get_full_name(self) -> str:
        return self.display_name

    def get_short_name(self) -> str:
        return self.display_name


class GatewayAccount(models.Model):
    """Which account a trusted gateway's user id maps to (gateway mode, docs/gateway.md).

    Both sides are unique: one gateway id has one account and an account answers to one
    gateway id, so a second gateway user cannot take over an account by its e-mail.
    """

    gateway_id = models.CharField(_("gateway user id"), max_length=200, unique=True)
    user = models.OneToOneField(
        User, verbose_name=_("user"), on_delete=models.CASCADE, related_name="gateway_account"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("gateway account")
        verbose_name_plural = _("gateway accounts")

    def __str__(self) -> str:
        return f"{self.gateway_id} → {self.user}"
