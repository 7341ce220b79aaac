"""Practising with the AI coach in a real browser: stop, quota, history tools, safety, offline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import last_reply, send, signup, start_practice, wait_socket

pytestmark = pytest.mark.e2e


def user_messages(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("[data-testid=message][data-role=user]")


def open_options(page: Page) -> None:
    page.locator("details.menu > summary").click()


def replies(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("[data-testid=message][data-role=assistant]")


def answer(page: Page, text: str, replies_before: int = 1):  # type: ignore[no-untyped-def]
    """Send a message and return the coach's new reply once it is on the page."""
    send(page, text)
    expect(replies(page)).to_have_count(replies_before + 1)
    return last_reply(page)


def test_stop_mid_reply_keeps_what_was_written(page: Page, server) -> None:
    signup(page, server.url)
    start_practice(page, server.url)

    reply = answer(page, "Take your time. [[fake:delay=0.2,tokens=60]]")
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(reply.locator(".body")).not_to_be_empty()
    page.get_by_test_id("stop").click()

    expect(reply).to_have_attribute("data-status", "stopped")
    expect(reply).to_contain_text("Stopped.")
    words = reply.locator(".body").inner_text().split()
    assert 0 < len(words) < 60
    expect(page.get_by_test_id("quota")).to_have_text("4")  # a stopped reply still counts


def test_with_no_replies_left_the_answer_still_gets_its_analysis(
    page: Page, server, db_access
) -> None:
    from accounts.models import User

    email = signup(page, server.url)
    User.objects.filter(email=email).update(daily_ai_limit=1)
    start_practice(page, server.url)
    expect(page.get_by_test_id("quota")).to_have_text("1")
    expect(answer(page, "My first answer.")).to_have_attribute("data-status", "complete")
    expect(page.get_by_test_id("quota")).to_have_text("0")
    # Told before typing: no coach reply, but an answer still gets its (free) feedback card.
    expect(page.get_by_test_id("quota-empty")).to_contain_text("No AI replies left today")
    expect(page.get_by_test_id("send")).to_be_enabled()

    send(page, "My second answer, which I typed with care.")

    expect(page.get_by_test_id("notice")).to_contain_text("used all of today's AI replies")
    expect(user_messages(page)).to_have_count(2)
    second = user_messages(page).last
    expect(second.get_by_test_id("feedback")).to_have_attribute("data-status", "analysed")
    expect(page.locator("[data-testid=message][data-role=assistant]")).to_have_count(2)


def test_enter_sends_and_shift_enter_starts_a_new_line(page: Page, server) -> None:
    signup(page, server.url)
    start_practice(page, server.url)
    box = page.get_by_test_id("composer-input")

    box.fill("First line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    expect(box).to_have_value("First line\nsecond line")
    expect(user_messages(page)).to_have_count(0)

    box.press("Enter")

    expect(user_messages(page)).to_have_count(1)
    assert user_messages(page).locator(".body").inner_text() == "First line\nsecond line"
    expect(box).to_have_value("")
    expect(box).to_be_focused()  # the next answer can be typed straight away
    expect(replies(page)).to_have_count(2)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")


def test_hostile_markdown_from_the_model_is_shown_safely(page: Page, server) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    signup(page, server.url)
    start_practice(page, server.url)

    reply = answer(page, "Any advice? [[fake:markdown]]")
    expect(reply).to_have_attribute("data-status", "complete")

    expect(reply.locator("strong")).to_have_text("bold")
    expect(reply.locator("li")).to_have_count(2)
    expect(reply.locator("img")).to_have_count(0)
    expect(reply.locator("script")).to_have_count(0)
    expect(reply).to_contain_text("<img src=x onerror=alert(1)>")  # visible as text
    expect(page.locator("#messages")).to_have_count(1)
    expect(page.get_by_test_id("messages")).not_to_have_text("pwned")  # not swapped in
    for link in reply.locator("a").all():
        assert not (link.get_attribute("href") or "").lower().startswith("javascript")
    page.reload()  # the server-rendered page is just as safe
    expect(last_reply(page).locator("img")).to_have_count(0)
    assert dialogs == []


def test_regenerate_replaces_the_last_reply(page: Page, server) -> None:
    signup(page, server.url)
    start_practice(page, server.url)
    first = answer(page, "Here is my answer.")
    expect(first).to_have_attribute("data-status", "complete")
    first_id = first.get_attribute("id")

    page.get_by_test_id("regenerate").click()

    expect(page.locator(f"#{first_id}")).to_have_count(0)
    expect(last_reply(page)).not_to_have_id(first_id)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(replies(page)).to_have_count(2)
    expect(page.get_by_test_id("quota")).to_have_text("3")


def test_a_reply_keeps_going_through_a_reload(page: Page, server) -> None:
    signup(page, server.url)
    url = start_practice(page, server.url)
    reply = answer(page, "Keep going without me. [[fake:delay=0.05,tokens=40]]")
    expect(reply.locator(".body")).not_to_be_empty()
    expect(reply).to_have_attribute("data-status", "streaming")

    page.goto(url)
    wait_socket(page)

    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "complete", timeout=10_000)
    assert len(reply.locator(".body").inner_text().split()) == 40


def test_rename_search_export_and_delete(page: Page, server) -> None:
    signup(page, server.url)
    url = start_practice(page, server.url)
    reply = answer(page, "I once organised a hackathon for 200 students.")
    expect(reply).to_have_attribute("data-status", "complete")

    # Rename in place (htmx), and the new title stays after a reload.
    open_options(page)
    page.get_by_test_id("rename-input").fill("Hackathon story")
    page.get_by_test_id("rename").click()
    expect(page.locator("h1.conv-title")).to_have_text("Hackathon story")
    page.reload()
    expect(page.locator("h1.conv-title")).to_have_text("Hackathon story")

    # Export: both downloads carry the conversation.
    open_options(page)
    with page.expect_download() as md:
        page.get_by_test_id("export-md").click()
    assert md.value.suggested_filename == "hackathon-story.md"
    text = Path(md.value.path()).read_text(encoding="utf-8")
    assert text.startswith("# Hackathon story") and "200 students" in text
    with page.expect_download() as js:
        page.get_by_test_id("export-json").click()
    data = json.loads(Path(js.value.path()).read_text(encoding="utf-8"))
    assert data["title"] == "Hackathon story"
    assert [m["role"] for m in data["messages"]] == ["assistant", "user", "assistant"]

    # A second conversation, then search by title and by message text.
    start_practice(page, server.url, slug="interview-software-engineer")
    page.goto(server.url + "/")
    items = page.get_by_test_id("conversation-item")
    expect(items).to_have_count(2)
    search = page.get_by_test_id("conversation-search")
    search.fill("hackathon")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("Hackathon story")
    search.fill("200 STUDENTS")
    expect(items).to_have_count(1)
    search.fill("no such words")
    expect(items).to_have_count(0)
    expect(page.get_by_test_id("conversation-list")).to_contain_text("Nothing matches")
    search.fill("")
    expect(items).to_have_count(2)

    # Delete asks first; cancelling keeps it, confirming removes it.
    page.goto(url)
    open_options(page)
    page.get_by_test_id("delete").click()
    expect(page.get_by_test_id("confirm-delete")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()
    expect(page.locator("h1.conv-title")).to_have_text("Hackathon story")
    open_options(page)
    page.get_by_test_id("delete").click()
    page.get_by_test_id("confirm-delete").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(items).to_have_count(1)
    expect(page.get_by_test_id("conversation-list")).not_to_contain_text("Hackathon story")
    assert page.goto(url).status == 404


def test_offline_coach_streams_its_next_question(page: Page, offline_server) -> None:
    signup(page, offline_server.url)
    page.get_by_test_id("new-conversation").click()
    expect(page.get_by_test_id("offline-mode")).to_be_visible()
    page.locator("[data-testid=persona-option][data-persona=interview-behavioural]").click()
    wait_socket(page)
    expect(page.get_by_test_id("offline-mode")).to_be_visible()

    reply = answer(page, "I am a product designer with five years of experience in fintech.")
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(reply).to_have_attribute("data-status", "complete", timeout=10_000)

    expect(reply).to_contain_text(
        "Tell me about a time you solved a difficult problem at work or school."
    )


def test_the_quota_reset_time_stays_in_the_readers_time_zone(browser, server) -> None:
    """Frames are rendered once, in the server's zone (Asia/Seoul): the page shows New York's."""
    context = browser.new_context(timezone_id="America/New_York", locale="en-US")
    page = context.new_page()
    try:
        signup(page, server.url)
        start_practice(page, server.url)
        reset = page.locator("#quota-box time[data-reset]")
        on_load = reset.inner_text()
        # Midnight in Seoul is 10:00 or 11:00 in New York, never 00:00; the day is said too.
        assert re.fullmatch(r"(today|tomorrow) 1[01]:00 AM", on_load), on_load

        answer(page, "I kept a list of every risk and reviewed it each week.")
        expect(page.get_by_test_id("quota")).to_have_text("4")  # the socket's quota frame
        expect(reset).to_have_text(on_load)
    finally:
        context.close()
