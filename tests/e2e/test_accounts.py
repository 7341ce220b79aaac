"""Accounts in a real browser: sign up, log out, log in, profile, and the phone layout."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import PASSWORD, signup

pytestmark = pytest.mark.e2e

PHONE = {"width": 375, "height": 740}


def log_in(page: Page, base_url: str, email: str, password: str) -> None:
    page.goto(base_url + "/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.get_by_role("button", name="Sign In").click()


def test_sign_up_log_out_and_log_in_again(page: Page, server) -> None:
    email = signup(page, server.url, nickname="Dana Browser")
    expect(page.get_by_test_id("nav-user")).to_have_text("Dana Browser")
    expect(page.get_by_test_id("conversation-list")).to_be_attached()

    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("nav-user")).to_have_count(0)
    expect(page.get_by_test_id("hero-signup")).to_be_visible()

    log_in(page, server.url, email.upper(), "definitely-not-it")
    expect(page.get_by_text("password you specified are not correct")).to_be_visible()
    expect(page.get_by_test_id("nav-user")).to_have_count(0)
    assert page.url.endswith("/accounts/login/")

    log_in(page, server.url, email, PASSWORD)
    expect(page.get_by_test_id("nav-user")).to_have_text("Dana Browser")
    expect(page.get_by_test_id("new-conversation")).to_be_visible()


def test_profile_nickname_edit_shows_in_the_nav(page: Page, server) -> None:
    signup(page, server.url, nickname="Before Edit")
    page.get_by_test_id("nav-user").click()
    expect(page.get_by_test_id("profile-form")).to_be_visible()
    nickname = page.locator("input[name=nickname]")

    # Inline check: an empty nickname shows an error at once, and nothing is saved.
    nickname.fill("")
    nickname.blur()
    expect(page.locator("#id_nickname-errors")).not_to_be_empty()
    page.reload()
    expect(nickname).to_have_value("Before Edit")
    expect(page.locator("#id_nickname-errors")).to_be_empty()

    nickname.fill("After Edit")
    page.locator("input[name=organisation]").fill("Team Blue")
    page.get_by_test_id("profile-save").click()
    expect(page.get_by_test_id("profile-form").get_by_role("status")).to_be_visible()
    expect(page.get_by_test_id("nav-user")).to_have_text("After Edit")

    page.goto(server.url + "/")
    expect(page.get_by_test_id("nav-user")).to_have_text("After Edit")
    # The save was confirmed in place: no stale "saved" notice turns up on the next page.
    expect(page.get_by_text("Your profile was saved.")).to_have_count(0)


def _no_horizontal_scroll(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_phone_home_shows_the_nav_without_horizontal_scroll(page: Page, server) -> None:
    page.set_viewport_size(PHONE)

    page.goto(server.url + "/")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav).to_be_visible()
    expect(nav.get_by_role("link", name="Log in")).to_be_visible()
    expect(nav.get_by_role("link", name="Sign up")).to_be_visible()
    assert _no_horizontal_scroll(page)

    signup(page, server.url, nickname="Phone Person With A Long Name")
    page.goto(server.url + "/")
    expect(nav).to_be_visible()
    expect(page.get_by_test_id("nav-user")).to_be_visible()
    expect(page.get_by_test_id("logout")).to_be_visible()
    expect(page.get_by_test_id("new-conversation")).to_be_visible()
    assert _no_horizontal_scroll(page)
    assert re.fullmatch(r"https?://[^/]+/", page.url)
