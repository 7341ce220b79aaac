"""Gateway identity end to end: the configured HTTP middleware stack and a websocket handshake."""

from __future__ import annotations

import time
import uuid

import pytest
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.http import HttpRequest, JsonResponse
from django.urls import path

from accounts.gateway import GatewayWebsocketMiddleware, build_headers
from accounts.models import User

SECRET = "integration-test-gateway-secret"


def whoami(request: HttpRequest) -> JsonResponse:
    """Report who Django thinks made the request."""
    user = request.user
    return JsonResponse(
        {"authenticated": user.is_authenticated, "email": getattr(user, "email", ""), "pk": user.pk}
    )


async def awhoami(request: HttpRequest) -> JsonResponse:
    """The async flavour, read through request.auser() as async views do."""
    user = await request.auser()
    return JsonResponse(
        {"authenticated": user.is_authenticated, "email": getattr(user, "email", "")}
    )


urlpatterns = [path("whoami/", whoami), path("awhoami/", awhoami)]
pytestmark = pytest.mark.urls(__name__)


class WhoAmIConsumer(AsyncJsonWebsocketConsumer):
    """Echo scope["user"] on connect."""

    async def connect(self) -> None:
        user = self.scope["user"]
        await self.accept()
        await self.send_json(
            {
                "authenticated": user.is_authenticated,
                "email": getattr(user, "email", ""),
                "pk": user.pk,
            }
        )


# Wrapped exactly as project/asgi.py does (minus the origin check, which needs an Origin header).
ws_application = AuthMiddlewareStack(
    GatewayWebsocketMiddleware(URLRouter([path("ws/whoami/", WhoAmIConsumer.as_asgi())]))
)


@pytest.fixture
def gateway_on(settings):
    """Turn the feature on for one test."""
    settings.GATEWAY_SHARED_SECRET = SECRET
    settings.GATEWAY_MAX_AGE_SECONDS = 300
    return settings


@pytest.fixture
def person() -> dict[str, str]:
    """A gateway user never seen before (the replay and mapping caches outlive test databases)."""
    tag = uuid.uuid4().hex[:10]
    return {"user_id": f"gw-{tag}", "email": f"Learner.{tag}@Example.com", "nickname": "김민지"}


def signed(person: dict[str, str], **overrides: object) -> dict[str, str]:
    """Freshly signed gateway headers for ``person``, as the gateway adds to every request."""
    fields: dict[str, object] = {**person, "secret": SECRET, "timestamp": int(time.time())}
    fields.update(overrides)
    return build_headers(**fields)  # type: ignore[arg-type]


def as_ws_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """Headers as they appear in an ASGI scope."""
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]


async def ws_whoami(
    headers: list[tuple[bytes, bytes]], path_and_query: str = "/ws/whoami/"
) -> dict[str, object]:
    """Open a websocket, read what the consumer saw, and close it."""
    communicator = WebsocketCommunicator(ws_application, path_and_query, headers=headers)
    try:
        connected, _ = await communicator.connect()
        assert connected
        return await communicator.receive_json_from()
    finally:
        await communicator.disconnect()


# --- wiring --------------------------------------------------------------------------------


def test_http_middleware_runs_right_after_authentication():
    middleware = django_settings.MIDDLEWARE
    position = middleware.index("accounts.gateway.GatewayIdentityMiddleware")

    assert position > middleware.index("django.contrib.auth.middleware.AuthenticationMiddleware")
    assert position > middleware.index("allauth.account.middleware.AccountMiddleware")


# --- HTTP ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_http_valid_headers_sign_in_as_the_created_user(client, gateway_on, person):
    body = client.get("/whoami/", headers=signed(person)).json()

    user = User.objects.get(email=person["email"].lower())
    assert body == {"authenticated": True, "email": user.email, "pk": user.pk}
    assert user.nickname == "김민지"


@pytest.mark.django_db
def test_http_second_valid_request_is_the_same_user(client, gateway_on, person):
    first = client.get("/whoami/", headers=signed(person)).json()
    second = client.get("/whoami/", headers=signed(person)).json()

    assert second["authenticated"]
    assert second["pk"] == first["pk"]
    assert User.objects.filter(email=person["email"].lower()).count() == 1


@pytest.mark.django_db
def test_http_gateway_sign_in_leaves_no_session_behind(client, gateway_on, person):
    client.get("/whoami/", headers=signed(person))

    assert client.get("/whoami/").json()["authenticated"] is False


@pytest.mark.django_db
def test_http_forged_headers_are_anonymous(client, gateway_on, person):
    body = client.get("/whoami/", headers=signed(person, secret="guessed-secret")).json()

    assert body["authenticated"] is False
    assert not User.objects.filter(email=person["email"].lower()).exists()


@pytest.mark.django_db
def test_http_stale_headers_are_anonymous(client, gateway_on, person):
    headers = signed(person, timestamp=int(time.time()) - 301)

    assert client.get("/whoami/", headers=headers).json()["authenticated"] is False


@pytest.mark.django_db
def test_http_replayed_headers_are_anonymous(client, gateway_on, person):
    headers = signed(person)

    assert client.get("/whoami/", headers=headers).json()["authenticated"] is True
    assert client.get("/whoami/", headers=headers).json()["authenticated"] is False


@pytest.mark.django_db
def test_http_query_string_identity_is_ignored(client, gateway_on):
    victim = User.objects.create_user(f"victim.{uuid.uuid4().hex[:8]}@example.com", nickname="V")

    body = client.get("/whoami/", {"user_id": victim.pk, "email": victim.email}).json()

    assert body["authenticated"] is False


@pytest.mark.django_db
def test_http_headers_ignored_when_the_feature_is_off(client, settings, person):
    settings.GATEWAY_SHARED_SECRET = ""

    body = client.get("/whoami/", headers=signed(person)).json()

    assert body["authenticated"] is False
    assert not User.objects.filter(email=person["email"].lower()).exists()


@pytest.mark.django_db
def test_http_bad_headers_leave_the_session_user_in_place(client, gateway_on, person):
    member = User.objects.create_user(f"member.{uuid.uuid4().hex[:8]}@example.com", nickname="M")
    client.force_login(member)

    body = client.get("/whoami/", headers=signed(person, secret="guessed-secret")).json()

    assert body["email"] == member.email


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_http_async_view_sees_the_gateway_user(async_client, gateway_on, person):
    response = await async_client.get("/awhoami/", headers=signed(person))

    assert response.json() == {"authenticated": True, "email": person["email"].lower()}


# --- websocket -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_ws_valid_handshake_is_the_created_user(gateway_on, person):
    seen = await ws_whoami(as_ws_headers(signed(person)))

    user = await User.objects.aget(email=person["email"].lower())
    assert seen == {"authenticated": True, "email": user.email, "pk": user.pk}


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_ws_second_handshake_is_the_same_user(gateway_on, person):
    first = await ws_whoami(as_ws_headers(signed(person)))
    second = await ws_whoami(as_ws_headers(signed(person)))

    assert second["authenticated"] is True
    assert second["pk"] == first["pk"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_ws_page_and_its_socket_share_one_account(client, gateway_on, person):
    page = await database_sync_to_async(client.get)("/whoami/", headers=signed(person))
    socket = await ws_whoami(as_ws_headers(signed(person)))

    assert socket["pk"] == page.json()["pk"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_ws_forged_handshake_is_anonymous(gateway_on, person):
    seen = await ws_whoami(as_ws_headers(signed(person, secret="guessed-secret")))

    assert seen["authenticated"] is False


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_ws_stale_handshake_is_anonymous(gateway_on, person):
    seen = await ws_whoami(as_ws_headers(signed(person, timestamp=int(time.time()) - 301)))

    assert seen["authenticated"] is False


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_ws_replayed_handshake_is_anonymous(gateway_on, person):
    headers = as_ws_headers(signed(person))

    assert (await ws_whoami(headers))["authenticated"] is True
    assert (await ws_whoami(headers))["authenticated"] is False


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_ws_headers_signed_for_http_cannot_be_replayed_on_a_socket(
    client, gateway_on, person
):
    headers = signed(person)
    await database_sync_to_async(client.get)("/whoami/", headers=headers)

    assert (await ws_whoami(as_ws_headers(headers)))["authenticated"] is False


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_ws_query_string_identity_is_ignored(gateway_on):
    victim = await User.objects.acreate(email=f"victim.{uuid.uuid4().hex[:8]}@example.com")

    seen = await ws_whoami([], f"/ws/whoami/?user_id={victim.pk}&email={victim.email}")

    assert seen["authenticated"] is False


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_ws_duplicated_gateway_header_is_refused(gateway_on, person):
    headers = as_ws_headers(signed(person))
    headers.append((b"x-gateway-email", b"someone.else@example.com"))

    assert (await ws_whoami(headers))["authenticated"] is False


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_ws_headers_ignored_when_the_feature_is_off(settings, person):
    settings.GATEWAY_SHARED_SECRET = ""

    seen = await ws_whoami(as_ws_headers(signed(person)))

    assert seen["authenticated"] is False


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_ws_bad_headers_leave_the_session_user_in_place(async_client, gateway_on, person):
    member = await User.objects.acreate(email=f"member.{uuid.uuid4().hex[:8]}@example.com")
    await async_client.aforce_login(member)
    cookie = async_client.cookies[django_settings.SESSION_COOKIE_NAME].value
    headers = as_ws_headers(signed(person, secret="guessed-secret"))
    headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()))

    seen = await ws_whoami(headers)

    assert seen == {"authenticated": True, "email": member.email, "pk": member.pk}
