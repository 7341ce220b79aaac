"""The websocket middleware stack: the signed-in user and session in the scope, sends unwrapped."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from project.sockets import auth_stack

pytestmark = pytest.mark.django_db(transaction=True)


def _scope(cookie: str) -> dict[str, Any]:
    return {"type": "websocket", "path": "/ws/", "headers": [(b"cookie", cookie.encode())]}


@pytest.mark.asyncio
async def test_the_user_and_session_come_from_the_cookie_and_frames_go_straight_out(
    client: Any, make_user: Any
) -> None:
    from channels.db import database_sync_to_async

    user = await database_sync_to_async(make_user)(nickname="Minji")
    await database_sync_to_async(client.force_login)(user)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    seen: dict[str, Any] = {}

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["user_pk"] = scope["user"].pk
        seen["session_key"] = scope["session"].session_key
        seen["send"] = send
        await send({"type": "websocket.send", "text": "frame"})

    sent: list[dict[str, Any]] = []

    async def server_send(message: dict[str, Any]) -> None:
        sent.append(message)

    await auth_stack(inner)(_scope(f"{settings.SESSION_COOKIE_NAME}={key}"), None, server_send)
    assert seen["user_pk"] == user.pk and seen["session_key"] == key
    assert seen["send"] is server_send  # no session wrapper between a frame and the server
    assert sent == [{"type": "websocket.send", "text": "frame"}]


@pytest.mark.asyncio
async def test_no_cookie_is_an_anonymous_socket_and_http_is_refused() -> None:
    seen: dict[str, Any] = {}

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["anonymous"] = scope["user"].is_anonymous

    async def server_send(message: dict[str, Any]) -> None:
        return None

    await auth_stack(inner)(_scope(""), None, server_send)
    assert seen == {"anonymous": True}
    with pytest.raises(ValueError):
        await auth_stack(inner)({**_scope(""), "type": "http"}, None, server_send)
