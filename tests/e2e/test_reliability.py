"""Issue #5 in a real browser: what the page's own script does when the server goes away.

The integration suite (tests/integration/test_reliability_faults.py) drives sockets the
way static/js/app.js does; this checks the script itself: after daphne is stopped with
SIGTERM mid-reply and started again, the open page reconnects, resyncs (sending the ids
of the replies it shows growing) and shows the interrupted reply as ended — no endless
cursor, nothing twice — and the conversation goes on.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import last_reply, send, signup, start_practice
from tests.fakes.fake_openai import Script
from tests.serverproc import DaphneServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def own_server(django_db_setup: None, django_db_blocker: Any, fake_openai: Any) -> Iterator[Any]:
    """A daphne of this test's own, to stop and start again on the same port."""
    from django.db import connection

    with django_db_blocker.unblock():
        name = str(connection.settings_dict["NAME"])
    env = {
        "SQLITE_PATH": name,
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": "test-key",
        "AI_DAILY_LIMIT": "5",
        "STREAM_SAVE_INTERVAL": "0.1",
    }
    servers = [DaphneServer(env).start()]
    yield servers
    for server in servers:
        server.stop()


def test_page_recovers_after_sigterm_mid_reply(page: Page, own_server: Any, fake_openai: Any):
    first = own_server[0]
    fake_openai.script = Script(tokens=12)
    signup(page, first.url)
    start_practice(page, first.url)
    send(page, "Tell me about it [[fake:tokens=400,delay=0.02]]")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(reply.locator(".body")).to_contain_text("hard problem", timeout=5_000)

    first.stop(signal.SIGTERM)
    again = DaphneServer(first.env, port=first.port).start()
    own_server.append(again)

    # The page reconnects by itself and learns that the reply ended while it was away.
    expect(page.locator("[data-testid=chat][data-ws=open]")).to_be_attached(timeout=15_000)
    expect(reply).to_have_attribute("data-status", "failed", timeout=10_000)
    expect(reply.locator(".cursor")).to_have_count(0)
    notice = page.locator("[data-testid=message][data-kind=error]")
    expect(notice).to_have_count(1)
    expect(notice).to_contain_text("restarted")
    ids = page.locator("[data-testid=message]").evaluate_all("els => els.map(e => e.id)")
    assert len(ids) == len(set(ids)) == 4  # opening, question, reply, notice: once each
    # The failed reply was refunded: 5 left. And the conversation goes on.
    expect(page.get_by_test_id("quota")).to_have_text("5")
    send(page, "Shall we go on?")
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=10_000)
