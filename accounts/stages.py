"""allauth log-in stages."""

from __future__ import annotations

from typing import Any

from allauth.account import stages
from allauth.account.models import EmailAddress


class EmailVerificationStage(stages.EmailVerificationStage):
    """Every sign-up confirms its address by code; people who already use Practalk are not
    stopped at log-in.

    Mandatory verification is what lets allauth answer a sign-up for a known address exactly
    like one for a new address (the owner gets an e-mail instead). At log-in it would also stop
    everyone who signed up before it was on, and accounts made without allauth (demo data,
    createsuperuser, the admin) that have no address row to verify: those go through as before.
    A sign-up that never entered its code still has to, at its next log-in.
    """

    def handle(self) -> tuple[Any, bool]:
        login = self.login
        user = login.user
        if not login.signup and user is not None and user.pk is not None:
            signed_in_before = user.last_login is not None
            if signed_in_before or not EmailAddress.objects.filter(user=user).exists():
                return None, True
        return super().handle()
