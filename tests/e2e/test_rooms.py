"""Two people in a live room, each in their own browser context."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.helpers import send, signup, wait_socket

pytestmark = pytest.mark.e2e


def create_room(page: Page, base_url: str, name: str, *, private: bool = False) -> str:
    """Create a room from the room list; returns its URL once its socket is open."""
    page.goto(base_url + "/rooms/")
    page.fill("input[name=name]", name)
    page.fill("input[name=topic]", "Practise small talk")
    if private:
        page.check("input[name=private]")
    page.get_by_test_id("create-room").click()
    wait_socket(page)
    return page.url


def messages(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("[data-testid=message]")


def notices(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("[data-testid=message][data-role=system][data-kind=notice]")


def test_two_people_chat_live_in_a_room(page: Page, browser: Browser, server) -> None:
    signup(page, server.url, nickname="Ahn")
    name = f"Coffee chat {uuid.uuid4().hex[:6]}"
    room_url = create_room(page, server.url, name)
    expect(page.get_by_test_id("presence")).to_contain_text("Ahn")
    expect(page.get_by_test_id("room-empty")).to_be_visible()  # a new room says what to do

    context = browser.new_context()
    other = context.new_page()
    signup(other, server.url, nickname="Bae")
    other.goto(server.url + "/rooms/")
    item = other.get_by_test_id("room-item").filter(has_text=name)
    expect(item).to_contain_text("1 member")
    item.locator("a").click()
    expect(messages(other)).to_have_count(0)
    other.get_by_test_id("join-room").click()
    wait_socket(other)
    assert other.url == room_url

    # Ahn's open page hears about Bae: a notice and the presence list.
    expect(notices(page).last).to_contain_text("Bae joined the room.")
    expect(page.get_by_test_id("room-empty")).to_be_hidden()
    expect(page.get_by_test_id("presence")).to_contain_text("Bae")
    expect(other.get_by_test_id("presence")).to_contain_text("Ahn")

    # Typing shows on the other page, not on the typist's own.
    other.get_by_test_id("composer-input").press_sequentially("Hi")
    expect(page.get_by_test_id("typing")).to_have_text("Bae is typing…")
    expect(other.get_by_test_id("typing")).to_have_text("Bae is typing…")
    expect(other.get_by_test_id("typing")).to_be_hidden()

    other.get_by_test_id("composer-input").fill("")
    send(other, "Hello from Bae")
    expect(messages(page).last).to_contain_text("Hello from Bae")
    expect(messages(other).last).to_contain_text("Hello from Bae")
    expect(other.get_by_test_id("composer-input")).to_have_value("")
    send(page, "Hi Bae, welcome!")
    expect(messages(other).last).to_contain_text("Hi Bae, welcome!")
    expect(messages(page).last).to_contain_text("Hi Bae, welcome!")
    # One rendering for everyone: the author's styling comes from CSS on data-author.
    author = messages(page).last.get_attribute("data-author")
    expect(messages(other).last).to_have_attribute("data-author", author)

    # HTML typed into a message is shown as text.
    send(page, "<b>x</b>")
    expect(messages(other).last.locator(".body")).to_have_text("<b>x</b>")
    assert other.locator("#messages .body b").count() == 0

    other.get_by_test_id("leave-room").click()
    expect(other).to_have_url(server.url + "/rooms/")
    expect(notices(page).last).to_contain_text("Bae left the room.")
    expect(page.get_by_test_id("presence")).not_to_contain_text("Bae")
    context.close()


def test_private_room_is_joined_through_the_invite_link(
    page: Page, browser: Browser, server
) -> None:
    signup(page, server.url, nickname="Cho")
    name = f"Study group {uuid.uuid4().hex[:6]}"
    room_url = create_room(page, server.url, name, private=True)
    page.get_by_test_id("room-menu").locator(":scope > summary").click()
    invite = page.get_by_test_id("invite-link").input_value()

    context = browser.new_context()
    other = context.new_page()
    signup(other, server.url, nickname="Dan")
    other.goto(server.url + "/rooms/")
    expect(other.get_by_test_id("room-item").filter(has_text=name)).to_have_count(0)
    assert other.goto(room_url).status == 404
    other.goto(invite)
    other.get_by_test_id("join-room").click()
    wait_socket(other)
    expect(notices(page).last).to_contain_text("Dan joined the room.")
    send(other, "Thanks for the invite")
    expect(messages(page).last).to_contain_text("Thanks for the invite")

    # The owner removes Dan: Dan's open page is closed and says so.
    page.reload()
    wait_socket(page)
    page.get_by_test_id("room-menu").locator(":scope > summary").click()
    dan = page.locator("[data-testid=members] li", has_text="Dan")
    dan.get_by_test_id("remove-member").locator("summary").click()
    dan.get_by_test_id("confirm-remove").click()
    wait_socket(page)
    expect(notices(page).last).to_contain_text("Dan was removed from the room.")
    expect(other.get_by_test_id("room-closed")).to_contain_text("no longer a member")
    expect(other.get_by_test_id("composer")).to_be_hidden()
    context.close()
