"""Accounts: sign-up, log in/out, case-insensitive e-mail, rate limits, profile, social buttons."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth import SESSION_KEY
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.test import Client, override_settings
from django.urls import reverse

from accounts.models import User
from tests.conftest import PASSWORD

SIGNUP_URL = "/accounts/signup/"
LOGIN_URL = "/accounts/login/"
LOGOUT_URL = "/accounts/logout/"
PROFILE_URL = "/profile/"

GITHUB_ONLY = {"github": {"APPS": [{"client_id": "gh-client", "secret": "gh-secret"}]}}


@pytest.fixture(autouse=True)
def clear_cache() -> Iterator[None]:
    """allauth keeps its rate-limit counters in the cache: start and end every test clean."""
    cache.clear()
    yield
    cache.clear()


def signed_in_user_id(client: Client) -> str | None:
    return client.session.get(SESSION_KEY)


def signup(client: Client, **fields: str) -> Any:
    data = {
        "email": "new.person@example.com",
        "nickname": "New Person",
        "password1": PASSWORD,
        "password2": PASSWORD,
        **fields,
    }
    return client.post(SIGNUP_URL, data)


def nickname_error(content: bytes) -> str:
    """The text of the nickname field's error slot (the element htmx swaps in)."""
    match = re.search(
        r'<div class="errors" id="id_nickname-errors"[^>]*>(.*?)</div>', content.decode(), re.S
    )
    assert match, "the nickname error slot is missing"
    return match.group(1).strip()


# --- Sign-up ------------------------------------------------------------------------------


def mailed_code(email: str) -> str:
    """The verification code in the last e-mail sent to `email`."""
    from django.core import mail

    body = next(m.body for m in reversed(mail.outbox) if m.to == [email])
    match = re.search(r"^\s*([A-Z0-9]{4}-[A-Z0-9]{4})\s*$", body, re.M)
    assert match, body
    return match.group(1)


@pytest.mark.django_db
def test_signup_confirms_the_mailed_code_then_lands_signed_in_with_nickname(
    client: Client,
) -> None:
    response = signup(client, email="Kim.Min@Example.COM", nickname="  Kim   Min ")

    assert response.status_code == 302
    assert response.url == reverse("account_email_verification_sent")
    user = User.objects.get()
    assert user.email == "kim.min@example.com"
    assert user.nickname == "Kim Min"
    assert signed_in_user_id(client) is None  # not before the code
    confirmed = client.post(response.url, {"code": mailed_code("kim.min@example.com")})
    assert confirmed.status_code == 302
    assert confirmed.url == reverse("home")
    assert signed_in_user_id(client) == str(user.pk)
    home = client.get("/")
    assert b'data-testid="conversation-list"' in home.content
    assert b"Kim Min" in home.content


@pytest.mark.django_db
def test_a_sign_up_that_never_entered_its_code_is_asked_for_it_at_log_in(
    client: Client,
) -> None:
    signup(client, email="late@example.com")
    cache.clear()  # some minutes later: allauth mails one code per address per 3 minutes
    later = Client()

    response = later.post(LOGIN_URL, {"login": "late@example.com", "password": PASSWORD})

    assert response.status_code == 302
    assert response.url == reverse("account_email_verification_sent")
    assert signed_in_user_id(later) is None
    later.post(response.url, {"code": mailed_code("late@example.com")})
    assert signed_in_user_id(later) is not None


@pytest.mark.django_db
def test_someone_who_signed_in_before_is_not_asked_for_a_code(client: Client) -> None:
    signup(client, email="old@example.com")
    client.post(
        reverse("account_email_verification_sent"), {"code": mailed_code("old@example.com")}
    )
    client.post(LOGOUT_URL)
    from django.core import mail

    mail.outbox.clear()

    response = client.post(LOGIN_URL, {"login": "old@example.com", "password": PASSWORD})

    assert response.status_code == 302 and response.url == reverse("home")
    assert signed_in_user_id(client) is not None
    assert mail.outbox == []


@pytest.mark.django_db
def test_signup_without_nickname_is_refused(client: Client) -> None:
    response = signup(client, nickname="   ")

    assert response.status_code == 200
    assert "nickname" in response.context["form"].errors
    assert not User.objects.exists()
    assert signed_in_user_id(client) is None


@pytest.mark.django_db
def test_duplicate_email_in_other_case_makes_no_second_account_and_tells_the_owner(
    client: Client, make_user: Callable[..., User]
) -> None:
    from django.core import mail

    make_user(email="kim@example.com")

    response = signup(client, email="Kim@Example.com")

    # Answered like any sign-up (who has an account is not revealed); the owner is told.
    assert response.status_code == 302
    assert response.url == reverse("account_email_verification_sent")
    assert b"already registered" not in client.get(response.url).content
    assert User.objects.count() == 1
    assert signed_in_user_id(client) is None
    assert [m.to for m in mail.outbox] == [["kim@example.com"]]
    assert "already exists" in mail.outbox[0].body


@pytest.mark.django_db
def test_duplicate_email_in_other_case_is_refused_by_the_database(
    make_user: Callable[..., User],
) -> None:
    make_user(email="kim@example.com")
    other = make_user(email="someone@example.com")

    # update() skips User.save(), which lower-cases: only the functional constraint can refuse.
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.filter(pk=other.pk).update(email="Kim@Example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.bulk_create([User(email="KIM@EXAMPLE.COM", nickname="Kim again")])
    assert User.objects.filter(email__iexact="kim@example.com").count() == 1


@pytest.mark.django_db
def test_user_save_lower_cases_the_email(make_user: Callable[..., User]) -> None:
    user = make_user(email="  Lee@Example.Org ")

    user.refresh_from_db()
    assert user.email == "lee@example.org"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("password", "reason"),
    [("short1!", "too short"), ("password123", "too common"), ("4815162342", "entirely numeric")],
)
def test_weak_password_is_refused_at_signup(client: Client, password: str, reason: str) -> None:
    response = signup(client, password1=password, password2=password)

    assert response.status_code == 200
    assert "password1" in response.context["form"].errors
    assert reason in " ".join(response.context["form"].errors["password1"])
    assert not User.objects.exists()


# --- Log in / log out ---------------------------------------------------------------------


@pytest.mark.django_db
def test_login_with_email_in_any_case_signs_in(
    client: Client, make_user: Callable[..., User]
) -> None:
    user = make_user(email="kim@example.com")

    response = client.post(LOGIN_URL, {"login": "KIM@example.com", "password": PASSWORD})

    assert response.status_code == 302
    assert response.url == reverse("home")
    assert signed_in_user_id(client) == str(user.pk)


@pytest.mark.django_db
def test_wrong_password_shows_an_error_and_does_not_sign_in(
    client: Client, make_user: Callable[..., User]
) -> None:
    make_user(email="kim@example.com")

    response = client.post(LOGIN_URL, {"login": "kim@example.com", "password": "not-it-at-all"})

    assert response.status_code == 200
    assert b"password you specified are not correct" in response.content
    assert signed_in_user_id(client) is None


@pytest.mark.django_db
def test_logout_by_post_signs_out(client: Client, make_user: Callable[..., User]) -> None:
    client.force_login(make_user())

    response = client.post(LOGOUT_URL)

    assert response.status_code == 302
    assert response.url == reverse("home")
    assert signed_in_user_id(client) is None


@pytest.mark.django_db
def test_logout_by_get_only_asks_for_confirmation(
    client: Client, make_user: Callable[..., User]
) -> None:
    user = make_user()
    client.force_login(user)

    response = client.get(LOGOUT_URL)

    assert response.status_code == 200
    assert signed_in_user_id(client) == str(user.pk)


@pytest.mark.django_db
def test_login_is_rate_limited_after_repeated_failures(
    client: Client, make_user: Callable[..., User]
) -> None:
    user = make_user(email="kim@example.com")
    for _ in range(5):  # ACCOUNT_RATE_LIMITS login_failed: 5 per 5 minutes per address
        response = client.post(LOGIN_URL, {"login": "kim@example.com", "password": "wrong-one"})
        assert b"Too many failed login attempts" not in response.content

    # Now even the right password is turned away.
    response = client.post(LOGIN_URL, {"login": "kim@example.com", "password": PASSWORD})

    assert response.status_code == 200
    assert b"Too many failed login attempts" in response.content
    assert signed_in_user_id(client) is None
    # The limit is per address: another person can still sign in.
    other = make_user(email="lee@example.com")
    response = client.post(LOGIN_URL, {"login": "lee@example.com", "password": PASSWORD})
    assert signed_in_user_id(client) == str(other.pk)
    assert user.pk != other.pk


# --- Profile ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_profile_page_requires_sign_in(client: Client) -> None:
    response = client.get(PROFILE_URL)

    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))
    assert "next=/profile/" in response.url


@pytest.mark.django_db
def test_profile_edit_saves_nickname_and_organisation(
    client: Client, make_user: Callable[..., User]
) -> None:
    user = make_user(nickname="Old name")
    client.force_login(user)

    response = client.post(PROFILE_URL, {"nickname": "New name", "organisation": "Radiology"})

    assert response.status_code == 302
    assert response.url == PROFILE_URL
    user.refresh_from_db()
    assert user.nickname == "New name"
    assert user.organisation == "Radiology"
    page = client.get(PROFILE_URL)
    assert b'data-testid="nav-user">New name<' in page.content
    assert b"Your profile was saved." in page.content


@pytest.mark.django_db
def test_profile_htmx_save_returns_the_form_partial(
    client: Client, make_user: Callable[..., User]
) -> None:
    user = make_user(nickname="Old name")
    client.force_login(user)

    response = client.post(
        PROFILE_URL, {"nickname": "Htmx name", "organisation": ""}, headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    assert b'id="profile-form"' in response.content
    assert b"<html" not in response.content
    # The nav's name is swapped out of band, so it changes without a reload.
    assert (
        b'id="nav-user" data-testid="nav-user" hx-swap-oob="true">Htmx name</a>' in response.content
    )
    user.refresh_from_db()
    assert user.nickname == "Htmx name"
    # Confirmed in place: no flash message is left over for the next page.
    assert b"Your profile was saved." not in client.get("/").content


@pytest.mark.django_db
def test_profile_validate_only_shows_the_error_partial_and_does_not_save(
    client: Client, make_user: Callable[..., User]
) -> None:
    user = make_user(nickname="Keep me", organisation="Before")
    client.force_login(user)
    headers = {"HX-Request": "true", "X-Validate-Only": "1"}

    response = client.post(PROFILE_URL, {"nickname": "", "organisation": "After"}, headers=headers)

    assert response.status_code == 200
    assert b"<html" not in response.content
    assert nickname_error(response.content)
    user.refresh_from_db()
    assert user.nickname == "Keep me"
    assert user.organisation == "Before"

    # A valid value is checked but still not saved.
    response = client.post(
        PROFILE_URL, {"nickname": "Not saved", "organisation": "After"}, headers=headers
    )
    assert response.status_code == 200
    assert nickname_error(response.content) == ""
    user.refresh_from_db()
    assert user.nickname == "Keep me"


@pytest.mark.django_db
def test_profile_empty_nickname_is_refused_on_save(
    client: Client, make_user: Callable[..., User]
) -> None:
    user = make_user(nickname="Keep me")
    client.force_login(user)

    response = client.post(PROFILE_URL, {"nickname": "  ", "organisation": ""})

    assert response.status_code == 200
    assert nickname_error(response.content)
    user.refresh_from_db()
    assert user.nickname == "Keep me"


# --- Home ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_home_signed_out_shows_the_landing_with_signup_and_login_links(client: Client) -> None:
    response = client.get("/")

    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="{reverse("account_signup")}"' in html
    assert f'href="{reverse("account_login")}"' in html
    assert 'data-testid="hero-signup"' in html
    assert 'data-testid="conversation-list"' not in html


@pytest.mark.django_db
def test_home_signed_in_shows_conversation_list_and_new_conversation(
    client: Client, make_user: Callable[..., User]
) -> None:
    client.force_login(make_user(nickname="Jin"))

    response = client.get("/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="conversation-list"' in html
    assert 'data-testid="new-conversation"' in html
    assert 'data-testid="hero-signup"' not in html


# --- Social sign-in -----------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(SOCIALACCOUNT_PROVIDERS={})
def test_login_page_without_providers_shows_no_social_buttons(client: Client) -> None:
    html = client.get(LOGIN_URL).content.decode()

    assert "/accounts/github/login/" not in html
    assert "/accounts/kakao/login/" not in html
    assert "GitHub" not in html
    assert "Kakao" not in html


@pytest.mark.django_db
@override_settings(SOCIALACCOUNT_PROVIDERS=GITHUB_ONLY)
def test_login_page_with_github_configured_shows_github_only(client: Client) -> None:
    html = client.get(LOGIN_URL).content.decode()

    assert "/accounts/github/login/" in html
    assert "GitHub" in html
    assert "/accounts/kakao/login/" not in html
    assert "Kakao" not in html


@pytest.mark.django_db
def test_social_login_is_never_attached_to_an_account_by_email(
    make_user: Callable[..., User], rf: Any
) -> None:
    from allauth.account.models import EmailAddress
    from allauth.core import context
    from allauth.socialaccount.models import SocialAccount, SocialLogin

    existing = make_user(email="kim@example.com")

    with (
        override_settings(SOCIALACCOUNT_PROVIDERS=GITHUB_ONLY),
        context.request_context(rf.get("/")),
    ):
        account = SocialAccount(provider="github", uid="4242", extra_data={"login": "kim"})
        sociallogin = SocialLogin(
            user=User(email="kim@example.com"),
            account=account,
            provider=account.get_provider(),
            # Even an address the provider calls verified does not hand over the local account.
            email_addresses=[EmailAddress(email="kim@example.com", verified=True, primary=True)],
        )
        sociallogin.lookup()

    assert not sociallogin.is_existing
    assert sociallogin.user.pk != existing.pk
