"""The Content-Security-Policy in a real browser: nothing the app does is blocked by it."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.e2e.helpers import last_reply, send, signup, start_practice, wait_socket

pytestmark = pytest.mark.e2e

# Runs before any page script: collects every violation the browser reports.
LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + e.sample);
});
"""


def violations(page: Page) -> list[str]:
    return page.evaluate("window.__csp || []")


def test_sign_up_practice_and_a_room_raise_no_csp_violation(page: Page, server: Any) -> None:
    console: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            console.append(message.text)

    page.on("console", on_console)
    page.add_init_script(LISTEN)
    headers: list[str] = []
    page.on(
        "response",
        lambda r: (
            headers.append(r.headers.get("content-security-policy", ""))
            if r.request.resource_type == "document"
            else None
        ),
    )

    signup(page, server.url)
    assert violations(page) == []
    start_practice(page, server.url)  # waits for the socket: connect-src let it open
    send(page, "Hello, I am ready for my interview.")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "complete", timeout=15_000)
    mine = page.locator("[data-testid=message][data-role=user]").last
    expect(mine).to_contain_text("ready for my interview")
    # The per-person <style> (nonce) applied: my message has the "mine" colour.
    same_colour = mine.evaluate(
        "el => getComputedStyle(el).getPropertyValue('--bubble').trim() === "
        "getComputedStyle(document.documentElement).getPropertyValue('--mine').trim()"
    )
    assert same_colour
    assert violations(page) == []

    page.goto(server.url + "/rooms/")
    page.get_by_test_id("create-room-form").locator("input[name=name]").fill("CSP room")
    page.get_by_test_id("create-room").click()
    wait_socket(page)
    send(page, "Hi room")
    expect(page.locator("[data-testid=message][data-role=user]").last).to_contain_text("Hi room")

    assert violations(page) == []
    assert console == []
    assert headers and all("default-src 'self'" in h for h in headers), headers
    assert all("frame-ancestors 'none'" in h and "ws://127.0.0.1:" in h for h in headers)


def test_an_injected_inline_script_is_blocked(page: Page, server: Any) -> None:
    """The policy is really enforced: an inline script someone slipped in does not run."""
    page.add_init_script(LISTEN)
    page.goto(server.url + "/accounts/login/")
    page.evaluate(
        """() => {
        const s = document.createElement("script");
        s.textContent = "window.__ran = true";
        document.body.appendChild(s);
    }"""
    )

    assert page.evaluate("window.__ran === true") is False
    expect(page.locator("body")).to_be_visible()
    assert any(v.startswith("script-src") for v in violations(page))
