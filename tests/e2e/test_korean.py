"""The Korean interface in a real browser: sign up and practise in Korean, switch languages,
and the choice remembered after signing in again."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.helpers import (
    PASSWORD,
    confirm_email,
    last_reply,
    send,
    start_practice,
    wait_socket,
)

pytestmark = pytest.mark.e2e

_n = itertools.count(1)


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[[str], Page]]:
    """open_page(locale) → a page in a fresh browser context with that browser language."""
    contexts = []

    def open_(locale: str) -> Page:
        context = browser.new_context(locale=locale)
        contexts.append(context)
        return context.new_page()

    yield open_
    for context in contexts:
        context.close()


def new_email() -> str:
    return f"ko{next(_n)}-{int(time.time() * 1000)}@example.com"


def expect_language(page: Page, code: str) -> None:
    expect(page.locator("html")).to_have_attribute("lang", code)


def switch_language(page: Page, name: str, button: str) -> None:
    """Choose a language in the header's switch and press its button (no script needed)."""
    switch = page.get_by_test_id("language-switch")
    switch.get_by_role("combobox").select_option(label=name)
    switch.get_by_role("button", name=button).click()


def test_sign_up_and_practise_in_korean(open_page: Callable[[str], Page], server) -> None:
    page = open_page("ko-KR")
    page.goto(server.url + "/")
    expect_language(page, "ko")
    expect(page.get_by_test_id("hero-signup")).to_have_text("무료로 가입하기")

    page.goto(server.url + "/accounts/signup/")
    email = new_email()
    page.fill("input[name=email]", email)
    page.fill("input[name=nickname]", "김민지")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.get_by_role("button", name="회원가입").click()
    expect_language(page, "ko")  # the code page too
    confirm_email(page, email)
    expect(page.get_by_test_id("nav-user")).to_have_text("김민지")
    expect(page.get_by_test_id("new-conversation")).to_have_text("새 대화")
    expect(page.get_by_role("navigation", name="주 메뉴")).to_be_visible()

    start_practice(page, server.url)
    expect_language(page, "ko")
    expect(page.get_by_test_id("send")).to_have_text("보내기")
    expect(page.locator("#quota-box")).to_contain_text("AI 답변")

    send(page, "저는 팀 프로젝트를 이끌었어요. [[fake:delay=0.2,tokens=40]]")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "streaming")
    # Frames from the socket speak Korean too: the refreshed composer and a notice.
    expect(page.get_by_test_id("composer-input")).to_have_attribute(
        "placeholder", re.compile("^답변을 입력하세요")
    )
    send(page, "하나 더요")
    expect(page.get_by_test_id("notice")).to_contain_text("코치가 아직 답하는 중이에요")
    page.get_by_test_id("stop").click()
    expect(reply).to_have_attribute("data-status", "stopped")
    expect(reply).to_contain_text("중지했어요.")
    expect(page.get_by_test_id("quota")).to_have_text("4")


def test_language_switch_changes_the_interface_and_back(
    open_page: Callable[[str], Page], server
) -> None:
    page = open_page("ko-KR")
    page.goto(server.url + "/rooms/")  # signed out: the sign-in page, in Korean
    expect_language(page, "ko")
    # Labelled and keyboard-reachable: a real select and a real button.
    select = page.get_by_label("언어", exact=True)
    select.focus()
    expect(select).to_be_focused()

    switch_language(page, "English", "언어 변경")
    expect_language(page, "en")
    assert "/accounts/login/" in page.url  # back where the switch was used
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Log in")
    ).to_be_visible()

    page.goto(server.url + "/")
    expect_language(page, "en")  # remembered by the language cookie
    expect(page.get_by_test_id("hero-signup")).to_have_text("Sign up — it's free")

    switch_language(page, "한국어", "Change language")
    expect_language(page, "ko")
    expect(page.get_by_test_id("hero-signup")).to_have_text("무료로 가입하기")


def test_language_is_remembered_after_logging_in_again(
    open_page: Callable[[str], Page], server
) -> None:
    page = open_page("en-US")
    email = new_email()
    page.goto(server.url + "/accounts/signup/")
    expect_language(page, "en")
    page.fill("input[name=email]", email)
    page.fill("input[name=nickname]", "Mina")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.get_by_role("button", name="Sign Up").click()
    confirm_email(page, email)
    expect(page.get_by_test_id("nav-user")).to_have_text("Mina")

    switch_language(page, "한국어", "Change language")
    expect_language(page, "ko")
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("hero-signup")).to_be_visible()

    # Another browser, in English, that has never seen the switch: the profile decides.
    other = open_page("en-US")
    other.goto(server.url + "/accounts/login/")
    expect_language(other, "en")
    other.fill("input[name=login]", email)
    other.fill("input[name=password]", PASSWORD)
    other.get_by_role("button", name="Sign In").click()
    expect(other.get_by_test_id("nav-user")).to_have_text("Mina")
    expect_language(other, "ko")
    expect(other.get_by_test_id("new-conversation")).to_have_text("새 대화")

    # The profile shows the saved choice; times follow the page's language, not the browser's.
    other.get_by_test_id("nav-user").click()
    expect(other.get_by_test_id("profile-language")).to_have_value("ko")
    start_practice(other, server.url)
    wait_socket(other)
    expect(other.locator("[data-testid=message] time").first).to_have_text(re.compile("오전|오후"))

    # Back to following the browser: blank in the profile, and the page is English again.
    other.goto(server.url + "/profile/")
    other.get_by_test_id("profile-language").select_option("")
    other.get_by_test_id("profile-save").click()
    expect_language(other, "en")
    expect(other.get_by_test_id("profile-language")).to_have_value("")


def test_a_room_in_korean_two_people(open_page: Callable[[str], Page], server) -> None:
    """Rooms in Korean: the list, creating one, a second person joining, live messages."""
    owner = open_page("ko-KR")
    signup_korean(owner, server.url, "박서준")
    owner.goto(server.url + "/rooms/")
    expect_language(owner, "ko")
    expect(owner.get_by_test_id("create-room")).to_have_text("만들기")
    owner.fill("input[name=name]", "영어 스몰토크")
    owner.fill("input[name=topic]", "주말 이야기")
    owner.get_by_test_id("create-room").click()
    wait_socket(owner)
    room_url = owner.url
    expect(owner.get_by_test_id("room-empty")).to_be_visible()

    guest = open_page("ko-KR")
    signup_korean(guest, server.url, "이지은")
    guest.goto(room_url)
    guest.get_by_test_id("join-room").click()
    wait_socket(guest)
    # The join notice reaches the owner live; both pages speak Korean.
    expect(owner.locator("[data-testid=message][data-kind=notice]").last).to_contain_text("이지은")
    guest.get_by_test_id("composer-input").fill("안녕하세요! 주말에 뭐 했어요?")
    guest.get_by_test_id("send").click()
    expect(owner.locator("[data-testid=message][data-role=user]").last).to_contain_text(
        "주말에 뭐 했어요"
    )
    expect(guest.get_by_test_id("leave-room")).to_have_text("대화방 나가기")


def signup_korean(page: Page, base_url: str, nickname: str) -> str:
    """Sign up through the Korean pages (form, then the e-mailed code); returns the e-mail."""
    email = new_email()
    page.goto(base_url + "/accounts/signup/")
    page.fill("input[name=email]", email)
    page.fill("input[name=nickname]", nickname)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.get_by_role("button", name="회원가입").click()
    confirm_email(page, email)
    expect(page.get_by_test_id("nav-user")).to_have_text(nickname)
    return email
