"""allauth adapters: nickname on sign-up, safe social sign-in."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.encoding import force_str

from accounts.middleware import remember_language, saved_language
from accounts.models import User, normalize_email

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SiteIdentity:
    """What e-mails call the site: its name and the domain people know."""

    name: str
    domain: str


def site_identity() -> SiteIdentity:
    """Practalk's name and domain from settings (SITE_NAME, SITE_DOMAIN), never a request host."""
    return SiteIdentity(name=settings.SITE_NAME, domain=settings.SITE_DOMAIN)


class AccountAdapter(DefaultAccountAdapter):
    """Store e-mail lower-cased so uniqueness ignores case; sign in to one's own language."""

    def format_email_subject(self, subject: str) -> str:
        """ "[Practalk] …", whatever host the request came in on."""
        return f"[{settings.SITE_NAME}] {force_str(subject)}"

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        """Sign e-mails with the site's name and real domain (allauth's `current_site`)."""
        super().send_mail(template_prefix, email, {**context, "current_site": site_identity()})

    def clean_email(self, email: str) -> str:
        return normalize_email(super().clean_email(email))

    def get_login_stages(self) -> list[str]:
        """allauth's stages, with the e-mail check that spares existing people (stages.py)."""
        ours = "accounts.stages.EmailVerificationStage"
        return [
            ours if stage == "allauth.account.stages.EmailVerificationStage" else stage
            for stage in super().get_login_stages()
        ]

    def get_client_ip(self, request: HttpRequest) -> str:
        """The address rate limits count: from the trusted proxy's header when one is set.

        A request that did not come through every trusted proxy (an X-Forwarded-For shorter
        than TRUSTED_PROXY_COUNT, or no TRUSTED_CLIENT_IP_HEADER) is counted by its own peer
        address: allauth would answer it with a 500 or a 403.
        """
        try:
            return super().get_client_ip(request)
        except (ImproperlyConfigured, PermissionDenied):
            address = request.META.get("REMOTE_ADDR")
            if not address:
                raise
            logger.info("client address not given by the trusted proxy; using the peer's")
            return address

    def post_login(self, request: HttpRequest, user: Any, **kwargs: Any) -> HttpResponse:
        """Switch to the person's saved language at once, and keep it in the language cookie.

        At once, so the "signed in" message is in the language of the page that shows it.
        """
        language = saved_language(user)
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        response = super().post_login(request, user, **kwargs)
        if language:
            remember_language(response, language)
        return response


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    """Give social sign-ups a nickname from the provider's profile."""

    def populate_user(self, request: HttpRequest, sociallogin: Any, data: dict[str, Any]) -> User:
        user = super().populate_user(request, sociallogin, data)
        extra = sociallogin.account.extra_data or {}
        nickname = (
            data.get("name")
            or extra.get("name")
            or extra.get("login")
            or (extra.get("properties") or {}).get("nickname")
            or (user.email or "").split("@", 1)[0]
        )
        user.nickname = (nickname or "")[:40]
        if user.email:
            user.email = normalize_email(user.email)
        return user
