"""Gateway identity: signing, verification, replay protection and account mapping."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from urllib.parse import quote

import pytest
from asgiref.sync import iscoroutinefunction
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.cache import SessionStore
from django.http import HttpRequest, HttpResponse
from django.test import AsyncRequestFactory, RequestFactory

from accounts import gateway
from accounts.gateway import (
    GatewayIdentity,
    GatewayIdentityMiddleware,
    GatewayRefusedError,
    build_headers,
    canonical_string,
    claim_once,
    resolve_user,
    sign,
    verify,
)
from accounts.models import User

SECRET = "unit-test-gateway-secret"
NOW = 1_700_000_000


def make_headers(**overrides: object) -> dict[str, str]:
    """Headers for a fresh, unique gateway user signed with SECRET at NOW."""
    fields: dict[str, object] = {
        "user_id": f"gw-{uuid.uuid4().hex[:12]}",
        "email": f"{uuid.uuid4().hex[:12]}@example.com",
        "nickname": "Minji",
        "secret": SECRET,
        "timestamp": NOW,
    }
    fields.update(overrides)
    return build_headers(**fields)  # type: ignore[arg-type]


def identity_for(email: str, user_id: str = "gw-1", nickname: str = "Minji") -> GatewayIdentity:
    """A verified-looking identity with a unique signature, for the resolve_user tests."""
    return GatewayIdentity(user_id, email, nickname, NOW, uuid.uuid4().hex * 2)


@pytest.fixture
def gateway_on(settings):
    """Turn the feature on for one test."""
    settings.GATEWAY_SHARED_SECRET = SECRET
    settings.GATEWAY_MAX_AGE_SECONDS = 300
    return settings


# --- sign / verify -------------------------------------------------------------------------


def test_valid_headers_verify_to_the_signed_identity():
    headers = make_headers(user_id="gw-42", email="Kim@Example.com", nickname="Minji")

    identity = verify(headers, secret=SECRET, now=NOW)

    assert identity is not None
    assert identity.user_id == "gw-42"
    assert identity.email == "Kim@Example.com"
    assert identity.nickname == "Minji"
    assert identity.timestamp == NOW
    assert identity.signature == headers["X-Gateway-Signature"]


def test_header_names_are_case_insensitive():
    headers = {name.lower(): value for name, value in make_headers().items()}
    shouted = {name.upper(): value for name, value in make_headers().items()}

    assert verify(headers, secret=SECRET, now=NOW) is not None
    assert verify(shouted, secret=SECRET, now=NOW) is not None


def test_signature_is_hmac_sha256_of_the_documented_canonical_string():
    # The test vector printed in docs/gateway.md.
    message = "42\nkim@example.com\n김철수\n1700000000".encode()
    expected = hmac.new(b"s3cret", message, hashlib.sha256).hexdigest()

    signature = sign(
        user_id="42",
        email="kim@example.com",
        nickname="김철수",
        timestamp=1700000000,
        secret="s3cret",
    )

    assert signature == expected
    assert signature == "71ffbe138aefded95351ac4a36f4ca21e9491a50329585c96c3e611d6caa9570"


def test_nonce_is_appended_as_a_fifth_line():
    signature = sign(
        user_id="42",
        email="kim@example.com",
        nickname="김철수",
        timestamp=1700000000,
        secret="s3cret",
        nonce="9f1c2e7a5b3d4c6e8f0a1b2c3d4e5f60",
    )

    assert signature == "a07b0fc685fac8e9c4df6cc53adc0f3388e141bc97d7ee406283fbbd8ab8a113"


def test_headers_without_a_nonce_still_verify():
    headers = make_headers(nonce="")

    assert "X-Gateway-Nonce" not in headers
    assert verify(headers, secret=SECRET, now=NOW) is not None


def test_two_requests_in_the_same_second_get_distinct_signatures():
    first = make_headers(user_id="gw-1", email="a@example.com")
    second = make_headers(user_id="gw-1", email="a@example.com")

    assert first["X-Gateway-Signature"] != second["X-Gateway-Signature"]


def test_wrong_secret_is_rejected():
    headers = make_headers(secret="not-the-shared-secret")

    assert verify(headers, secret=SECRET, now=NOW) is None


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Gateway-Nickname", "Mallory"),
        ("X-Gateway-Email", "admin@example.com"),
        ("X-Gateway-User-Id", "gw-admin"),
        ("X-Gateway-Timestamp", str(NOW + 1)),
        ("X-Gateway-Nonce", "another-nonce"),
    ],
)
def test_changed_field_is_rejected(header, value):
    headers = make_headers()
    headers[header] = value

    assert verify(headers, secret=SECRET, now=NOW) is None


def test_dropping_the_nonce_breaks_the_signature():
    headers = make_headers()
    del headers["X-Gateway-Nonce"]

    assert verify(headers, secret=SECRET, now=NOW) is None


def test_bad_signature_logs_a_warning_without_raising(caplog):
    headers = make_headers()
    headers["X-Gateway-Signature"] = "0" * 64

    with caplog.at_level(logging.WARNING, logger="accounts.gateway"):
        assert verify(headers, secret=SECRET, now=NOW) is None

    assert "bad signature" in caplog.text


def test_stale_timestamp_is_rejected():
    headers = make_headers(timestamp=NOW - 301)

    assert verify(headers, secret=SECRET, now=NOW, max_age=300) is None


def test_timestamp_exactly_max_age_old_is_accepted():
    headers = make_headers(timestamp=NOW - 300)

    assert verify(headers, secret=SECRET, now=NOW, max_age=300) is not None


def test_max_age_comes_from_settings(settings):
    settings.GATEWAY_MAX_AGE_SECONDS = 10

    assert verify(make_headers(timestamp=NOW - 11), secret=SECRET, now=NOW) is None
    assert verify(make_headers(timestamp=NOW - 9), secret=SECRET, now=NOW) is not None


def test_future_timestamp_is_rejected():
    headers = make_headers(timestamp=NOW + 31)

    assert verify(headers, secret=SECRET, now=NOW) is None


def test_small_clock_skew_into_the_future_is_accepted():
    headers = make_headers(timestamp=NOW + 30)

    assert verify(headers, secret=SECRET, now=NOW) is not None


@pytest.mark.parametrize("timestamp", ["+1700000000", "1700000000.0", "01700000000", " ", "-5"])
def test_malformed_timestamp_is_rejected(timestamp):
    headers = make_headers()
    headers["X-Gateway-Timestamp"] = timestamp

    assert verify(headers, secret=SECRET, now=NOW) is None


@pytest.mark.parametrize(
    "missing",
    [
        "X-Gateway-User-Id",
        "X-Gateway-Email",
        "X-Gateway-Nickname",
        "X-Gateway-Timestamp",
        "X-Gateway-Signature",
    ],
)
def test_missing_header_is_ignored(missing):
    headers = make_headers()
    del headers[missing]

    assert verify(headers, secret=SECRET, now=NOW) is None


def test_no_gateway_headers_at_all_is_not_an_identity():
    assert verify({"Accept": "text/html"}, secret=SECRET, now=NOW) is None


def test_empty_secret_verifies_nothing():
    assert verify(make_headers(), secret="", now=NOW) is None


def test_signing_with_an_empty_secret_is_refused():
    with pytest.raises(ValueError):
        make_headers(secret="")


def test_korean_nickname_travels_percent_encoded_and_verifies():
    headers = make_headers(nickname="김민지")

    assert headers["X-Gateway-Nickname"].isascii()
    identity = verify(headers, secret=SECRET, now=NOW)
    assert identity is not None
    assert identity.nickname == "김민지"


def test_korean_nickname_sent_as_raw_utf8_also_verifies():
    headers = make_headers(nickname="김민지")
    # What a WSGI/ASGI server hands Django for raw UTF-8 header bytes: Latin-1-decoded text.
    headers["X-Gateway-Nickname"] = "김민지".encode().decode("latin-1")

    identity = verify(headers, secret=SECRET, now=NOW)

    assert identity is not None
    assert identity.nickname == "김민지"


@pytest.mark.parametrize("field", ["user_id", "email", "nickname"])
def test_canonical_string_refuses_newlines_that_would_make_it_ambiguous(field):
    fields = {"user_id": "42", "email": "kim@example.com", "nickname": "Minji"}
    fields[field] = "a\nb"

    with pytest.raises(ValueError):
        canonical_string(**fields, timestamp=NOW)


def test_percent_encoded_newline_in_the_nickname_is_rejected():
    headers = make_headers()
    # "Minji%0A..." decodes to a newline: refused before any HMAC is computed.
    headers["X-Gateway-Nickname"] = quote("Min\nji", safe="")

    assert verify(headers, secret=SECRET, now=NOW) is None


# --- replay --------------------------------------------------------------------------------


def test_replayed_signature_is_claimed_only_once(gateway_on):
    signature = make_headers()["X-Gateway-Signature"]

    assert claim_once(signature) is True
    assert claim_once(signature) is False


def test_upper_case_copy_of_a_seen_signature_is_a_replay(gateway_on):
    signature = make_headers()["X-Gateway-Signature"]

    assert claim_once(signature) is True
    assert claim_once(signature.upper()) is False


def test_upper_case_signature_verifies_to_the_lower_case_claim_key():
    headers = make_headers()
    headers["X-Gateway-Signature"] = headers["X-Gateway-Signature"].upper()

    identity = verify(headers, secret=SECRET, now=NOW)

    assert identity is not None
    assert identity.signature == identity.signature.lower()


# --- resolve_user ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_first_sight_creates_an_account_keyed_by_lower_cased_email():
    email = f"New.{uuid.uuid4().hex[:8]}@Example.COM"

    user = resolve_user(identity_for(email, nickname="김민지"))

    assert user.email == email.lower()
    assert user.nickname == "김민지"
    assert not user.has_usable_password()


@pytest.mark.django_db
def test_same_gateway_user_maps_to_the_same_account():
    email = f"{uuid.uuid4().hex[:8]}@example.com"

    first = resolve_user(identity_for(email, user_id="gw-7"))
    second = resolve_user(identity_for(email.upper(), user_id="gw-7", nickname="Renamed"))

    assert first.pk == second.pk
    assert User.objects.filter(email=email).count() == 1
    assert second.nickname == first.nickname  # the gateway does not overwrite a nickname


@pytest.mark.django_db
def test_email_claimed_by_another_gateway_id_is_refused():
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    resolve_user(identity_for(email, user_id="gw-owner"))

    with pytest.raises(GatewayRefusedError):
        resolve_user(identity_for(email, user_id="gw-intruder"))


@pytest.mark.django_db
def test_inactive_account_is_refused():
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    User.objects.create_user(email, "pw-irrelevant", nickname="Gone", is_active=False)

    with pytest.raises(GatewayRefusedError):
        resolve_user(identity_for(email))


@pytest.mark.django_db
def test_invalid_email_is_refused():
    with pytest.raises(GatewayRefusedError):
        resolve_user(identity_for("not-an-email"))


@pytest.mark.django_db
def test_long_nickname_is_cut_to_the_model_limit():
    user = resolve_user(identity_for(f"{uuid.uuid4().hex[:8]}@example.com", nickname="가" * 60))

    assert user.nickname == "가" * 40


# --- middleware ----------------------------------------------------------------------------


def run_middleware(request: HttpRequest) -> HttpRequest:
    """Pass a request (already given an anonymous user) through the sync middleware."""
    seen: list[HttpRequest] = []

    def view(req: HttpRequest) -> HttpResponse:
        seen.append(req)
        return HttpResponse("ok")

    request.user = AnonymousUser()
    request.session = SessionStore()
    GatewayIdentityMiddleware(view)(request)
    return seen[0]


@pytest.mark.django_db
def test_middleware_signs_the_request_in_without_a_session(gateway_on):
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    headers = make_headers(email=email, timestamp=int(time.time()))
    request = RequestFactory().get("/", headers=headers)

    seen = run_middleware(request)

    assert seen.user.is_authenticated
    assert seen.user.email == email
    assert SESSION_KEY not in seen.session  # no login(): nothing persists past this request


@pytest.mark.django_db
def test_query_string_identity_is_ignored(gateway_on):
    user = User.objects.create_user(f"{uuid.uuid4().hex[:8]}@example.com", nickname="Victim")
    request = RequestFactory().get(f"/?user_id={user.pk}&email={user.email}")

    seen = run_middleware(request)

    assert not seen.user.is_authenticated


def test_middleware_does_nothing_when_the_secret_is_empty(settings, monkeypatch):
    settings.GATEWAY_SHARED_SECRET = ""

    # Must not even look at the headers, let alone the database.
    def untouchable(headers: object) -> None:
        raise AssertionError("headers were inspected with the feature off")

    monkeypatch.setattr(gateway, "authenticate_headers", untouchable)
    request = RequestFactory().get("/", headers=make_headers(timestamp=int(time.time())))

    seen = run_middleware(request)

    assert not seen.user.is_authenticated


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_async_middleware_signs_the_request_in(gateway_on):
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    request = AsyncRequestFactory().get(
        "/", headers=make_headers(email=email, timestamp=int(time.time()))
    )
    request.user = AnonymousUser()
    seen: list[HttpRequest] = []

    async def view(req: HttpRequest) -> HttpResponse:
        seen.append(req)
        return HttpResponse("ok")

    middleware = GatewayIdentityMiddleware(view)
    await middleware(request)

    assert iscoroutinefunction(middleware)
    assert seen[0].user.email == email
    assert (await seen[0].auser()).email == email


@pytest.mark.django_db
def test_the_gateway_id_mapping_is_stored_in_the_database_not_the_cache():
    from django.core.cache import cache

    from accounts.models import GatewayAccount

    email = f"{uuid.uuid4().hex[:8]}@example.com"
    first = resolve_user(identity_for(email, user_id="gw-lasting"))
    cache.clear()  # a restarted cache (or Redis flushed) must not forget who owns the account

    assert GatewayAccount.objects.get(gateway_id="gw-lasting").user == first
    with pytest.raises(GatewayRefusedError):
        resolve_user(identity_for(email, user_id="gw-after-the-flush"))


@pytest.mark.django_db
def test_a_gateway_id_keeps_its_account_when_the_gateway_changes_the_email():
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    first = resolve_user(identity_for(email, user_id="gw-moves"))
    again = resolve_user(identity_for(f"new-{email}", user_id="gw-moves"))

    assert again.pk == first.pk
