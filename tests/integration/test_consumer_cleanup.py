"""A page's clean-up survives its consumer being cancelled (daphne's close timeout).

daphne cancels a consumer still running `application_close_timeout` (10 s) after its page
closed. A thousand pages closing at once on a busy process queue that long for the
database (bench part "memory" under load), and a cancelled clean-up left their Connection
rows behind for good: counted as open sockets until they went stale, never deleted.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from project.asgi import application
from tests.reliability_report import InProc, Person, connections_of

pytest_plugins = ["tests.reliability_report"]
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def _registered_after(user: Any, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while (left := await sync_to_async(connections_of)(user)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return left


@pytest.mark.parametrize("yields", [0, 1, 3], ids=["before-disconnect", "early", "mid-cleanup"])
async def test_a_consumer_cancelled_after_its_page_closed_still_forgets_the_page(
    alice: Person, yields: int
) -> None:
    page = await InProc.open(application, alice.path, alice.headers)
    assert page.close_code is None
    assert await sync_to_async(connections_of)(alice.user) == 1
    # The page goes; daphne gives up on the consumer before, or while, it cleans up.
    await page.comm.send_input({"type": "websocket.disconnect", "code": 1001})
    for _ in range(yields):
        await asyncio.sleep(0)
    page.comm.future.cancel()
    assert await _registered_after(alice.user, 3) == 0
