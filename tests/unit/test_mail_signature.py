"""E-mails are signed with the site's name and the domain people know, not a request's host."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from tests.conftest import PASSWORD


@pytest.mark.django_db
def test_the_sign_up_code_mail_is_signed_practalk_with_the_real_domain(
    client: Client, settings
) -> None:
    settings.SITE_DOMAIN = "practalk.example.com"

    client.post(
        reverse("account_signup"),
        {
            "email": "new@example.com",
            "nickname": "New",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
        HTTP_HOST="127.0.0.1",
    )

    (message,) = mail.outbox
    assert message.subject.startswith("[Practalk] ")
    assert "Practalk" in message.body
    assert "practalk.example.com" in message.body
    assert "127.0.0.1" not in message.body
