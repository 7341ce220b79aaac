"""A learner practises with the coach in a real browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import last_reply, send, signup, start_practice

pytestmark = pytest.mark.e2e


def test_reply_streams_then_completes_and_survives_reload(page: Page, server, fake_openai) -> None:
    from tests.fakes.fake_openai import Script

    fake_openai.script = Script(tokens=40, delay=0.03)
    signup(page, server.url)
    start_practice(page, server.url)
    messages = page.get_by_test_id("message")
    expect(messages.first).to_have_attribute("data-role", "assistant")  # the opening line
    send(page, "I led a team of four to ship our app a week early.")
    expect(page.locator("[data-testid=message][data-role=user]").last).to_contain_text(
        "ship our app"
    )
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "streaming")
    # Seen growing: some words first, more later, then complete.
    first = reply.locator(".body").inner_text()
    expect(reply).to_have_attribute("data-status", "complete", timeout=10_000)
    final = reply.locator(".body").inner_text()
    assert len(final) > len(first)
    assert page.get_by_test_id("composer-input").input_value() == ""
    expect(page.get_by_test_id("quota")).to_have_text("4")
    page.reload()
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    assert last_reply(page).locator(".body").inner_text().strip() == final.strip()
