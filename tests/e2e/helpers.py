"""What a person does in the browser, as functions."""

from __future__ import annotations

import email as email_parser
import itertools
import os
import re
import time
from pathlib import Path

from playwright.sync_api import Page, expect

PASSWORD = "Correct-Horse-42!"
_n = itertools.count(1)


def mailed_code(email: str, timeout: float = 10.0) -> str:
    """The sign-up code the server e-mailed to `email` (e-mails are files: see conftest)."""
    folder = Path(os.environ["EMAIL_FILE_PATH"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(folder.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True):
            for message in path.read_text(errors="replace").split("-" * 79):
                if f"To: {email}" in message:
                    # A Korean e-mail's body is base64: read it as the mail client would.
                    parsed = email_parser.message_from_string(message.strip())
                    raw = parsed.get_payload(decode=True)
                    body = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else message
                    match = re.search(r"^\s*([A-Z0-9]{4}-[A-Z0-9]{4})\s*$", body, re.M)
                    if match:
                        return match.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no code e-mailed to {email}")


def signup(page: Page, base_url: str, nickname: str = "") -> str:
    """Sign up a new person through the form and the mailed code; returns the e-mail.

    Ends signed in on home.
    """
    n = next(_n)
    email = f"e2e{n}-{int(time.time() * 1000)}@example.com"
    page.goto(base_url + "/accounts/signup/")
    page.fill("input[name=email]", email)
    page.fill("input[name=nickname]", nickname or f"Learner {n}")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.get_by_role("button", name="Sign Up").click()
    confirm_email(page, email)
    expect(page.get_by_test_id("nav-user")).to_be_visible()
    return email


def confirm_email(page: Page, email: str) -> None:
    """Type the code mailed to `email` into the confirmation page, in any language."""
    page.fill("input[name=code]", mailed_code(email))
    page.locator("form:has(input[name=code]) button[type=submit]").first.click()


def start_practice(page: Page, base_url: str, slug: str = "interview-behavioural") -> str:
    """Open a new practice conversation with a coach; returns its URL. Waits for the socket."""
    page.goto(base_url + "/")
    page.get_by_test_id("new-conversation").click()
    page.locator(f"[data-testid=persona-option][data-persona={slug}]").click()
    wait_socket(page)
    return page.url


def wait_socket(page: Page) -> None:
    """Wait until the page's websocket is open."""
    expect(page.locator("[data-testid=chat][data-ws=open]")).to_be_attached(timeout=10_000)


def send(page: Page, text: str) -> None:
    """Type a message and press Enter."""
    box = page.get_by_test_id("composer-input")
    box.fill(text)
    box.press("Enter")


def last_reply(page: Page):  # type: ignore[no-untyped-def]
    """The newest AI reply."""
    return page.locator("[data-testid=message][data-role=assistant]").last


def header_overflow(page: Page) -> list[str]:
    """What in the top bar sticks out past the right edge of the window (empty: it all fits)."""
    return page.evaluate(
        "[...document.querySelectorAll('.nav > *')].filter(e => e.offsetParent !== null &&"
        " e.getBoundingClientRect().right > window.innerWidth + 0.5)"
        ".map(e => (e.dataset.testid || e.className || e.tagName) + ' ends at '"
        " + Math.round(e.getBoundingClientRect().right))"
    )
