"""Feedback in a real browser: the card and its highlights, the report, progress, versions."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import last_reply, send, signup, start_practice, wait_socket

pytestmark = pytest.mark.e2e

WEAK = "Um, we usually, like, work together and we always try our best, you know."
STRONG = (
    "Last year at my job our releases took two days. I had to make them faster. "
    "I automated the tests and I wrote a deploy script, so releases took two hours."
)


def user_answers(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("[data-testid=message][data-role=user]")


def answer_and_wait(page: Page, text: str) -> None:
    count = user_answers(page).count()
    send(page, text)
    expect(user_answers(page)).to_have_count(count + 1)
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=10_000)


def test_an_answer_gets_a_card_with_highlighted_phrases(page: Page, server, fake_openai) -> None:
    from tests.fakes.fake_openai import Script

    fake_openai.script = Script(tokens=10)
    signup(page, server.url)
    start_practice(page, server.url)
    answer_and_wait(page, WEAK)
    answer = user_answers(page).last
    answer_id = answer.get_attribute("id").removeprefix("message-")
    card = page.locator(f"[data-testid=feedback][data-for='{answer_id}']")
    expect(card).to_be_visible()
    # The model's part arrives over the socket and replaces the card.
    expect(card).to_have_attribute("data-status", "complete", timeout=10_000)
    expect(card.get_by_test_id("rubric")).to_be_visible()
    expect(card).to_contain_text("Question 1 of")
    fillers = answer.locator(".body mark[data-kind=filler]")
    expect(fillers.first).to_have_text("Um")
    assert fillers.count() >= 2
    expect(answer.locator(".body mark[data-kind=we]").first).to_be_visible()
    # Keyboard-reachable details with the same findings as text.
    card.locator("summary").focus()
    page.keyboard.press("Enter")
    expect(card.locator(".feedback-quotes")).to_contain_text("“Um”")
    page.reload()
    expect(card).to_have_attribute("data-status", "complete")


def test_finish_practice_opens_the_report_and_progress_draws_the_chart(
    page: Page, server, fake_openai
) -> None:
    from tests.fakes.fake_openai import Script

    fake_openai.script = Script(tokens=10)
    signup(page, server.url)
    start_practice(page, server.url)
    answer_and_wait(page, STRONG)
    answer_and_wait(page, WEAK)
    page.get_by_test_id("finish-practice").click()
    report = page.get_by_test_id("report")
    expect(report).to_be_visible()
    expect(report.get_by_test_id("report-item")).to_have_count(2)
    expect(page.get_by_test_id("report-priorities").locator("li")).to_have_count(3)
    page.goto(server.url + "/")
    expect(page.get_by_test_id("report-link").first).to_be_visible()

    page.goto(server.url + "/progress/")
    chart = page.get_by_test_id("progress-chart")
    expect(chart).to_be_visible()
    assert chart.evaluate("el => el.tagName.toLowerCase()") == "svg"
    expect(chart.locator("polyline").first).to_be_attached()
    expect(page.get_by_test_id("progress-table")).to_contain_text("%")
    expect(page.get_by_test_id("streak")).to_contain_text("1 day in a row")


def test_answer_again_keeps_two_versions_to_compare(page: Page, server, fake_openai) -> None:
    from tests.fakes.fake_openai import Script

    fake_openai.script = Script(tokens=10)
    signup(page, server.url)
    start_practice(page, server.url)
    answer_and_wait(page, WEAK)
    page.reload()  # a past answer, as after coming back to the conversation
    wait_socket(page)
    first = user_answers(page).last
    first.get_by_test_id("answer-again").click()
    first.get_by_test_id("answer-again-input").fill(STRONG)
    first.get_by_test_id("answer-again-send").click()
    expect(page.locator("[data-testid=message]", has_text="Um, we usually")).to_have_count(0)
    expect(user_answers(page).last).to_contain_text("releases took two hours")
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=10_000)
    expect(user_answers(page).last.get_by_test_id("versions")).to_contain_text("Version 2 of 2")
    expect(user_answers(page).last.get_by_test_id("feedback")).to_be_visible()
    page.reload()
    versions = user_answers(page).last.get_by_test_id("versions")
    expect(versions).to_contain_text("Version 2 of 2")
    versions.get_by_test_id("compare").click()
    columns = page.get_by_test_id("compare-version")
    expect(columns).to_have_count(2)
    expect(columns.nth(0)).to_contain_text("Um, we usually")
    expect(columns.nth(1)).to_contain_text("releases took two hours")
    expect(columns.nth(1).get_by_test_id("feedback")).to_be_visible()
    # Switch back to the first version: one path at a time.
    columns.nth(0).get_by_test_id("show-version").click()
    expect(user_answers(page).last).to_contain_text("Um, we usually")
    expect(page.locator("[data-testid=message]", has_text="releases took two hours")).to_have_count(
        0
    )


def test_feedback_speaks_korean_when_the_interface_does(page: Page, offline_server) -> None:
    signup(page, offline_server.url)
    switch = page.get_by_test_id("language-switch")
    switch.get_by_role("combobox").select_option(label="한국어")
    switch.get_by_role("button", name="Change language").click()
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    start_practice(page, offline_server.url)
    answer_and_wait(page, WEAK)
    card = user_answers(page).last.get_by_test_id("feedback")
    expect(card).to_contain_text("이 답변에 대한 피드백")
    expect(card).to_contain_text("질문 ")
    # The offline coach's advice is in Korean too.
    expect(last_reply(page)).to_contain_text("다음에는:")
