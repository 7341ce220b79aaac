"""A live class in three browsers: a coach and two learners on phones."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.helpers import PASSWORD, header_overflow, signup, wait_socket

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
SHOTS = Path(os.environ.get("CLASS_SCREENSHOTS", "var/screenshots"))
QUESTIONS = [
    "Tell me about yourself.",
    "Describe a time you failed.",
    "Why do you want this job?",
    "Where do you see yourself in five years?",
]


def state(page: Page, value: str) -> None:
    expect(page.get_by_test_id("session-state")).to_have_attribute("data-state", value)


def test_a_coach_runs_a_class_that_two_learners_follow(browser: Browser, server, db_access) -> None:
    from accounts.models import User

    coach_ctx = browser.new_context(viewport=PHONE, locale="en-US")
    coach = coach_ctx.new_page()
    coach_email = signup(coach, server.url, nickname="Coach Yoon")
    User.objects.filter(email=coach_email).update(role="coach")

    # The coach creates a class and starts a live session.
    coach.goto(server.url + "/")
    coach.get_by_test_id("nav-classes").click()
    title = f"Interview practice {uuid.uuid4().hex[:6]}"
    form = coach.get_by_test_id("create-class")
    form.locator("input[name=title]").fill(title)
    form.locator("textarea[name=questions]").fill("\n".join(QUESTIONS))
    form.get_by_role("button", name="Create class").click()
    coach.get_by_test_id("start-session").click()
    wait_socket(coach)
    state(coach, "waiting")
    code = coach.get_by_test_id("join-code").inner_text().strip()
    assert len(code) == 6
    expect(coach.get_by_test_id("join-qr").locator("svg")).to_be_visible()
    session_url = coach.url

    # Minji types the code in lower case with a space.
    a_ctx = browser.new_context(viewport=PHONE, locale="en-US")
    a = a_ctx.new_page()
    signup(a, server.url, nickname="Minji")
    a.goto(server.url + "/join/")
    a.get_by_test_id("join-code-input").fill(f"{code[:3].lower()} {code[3:].lower()}")
    a.get_by_test_id("join-submit").click()
    wait_socket(a)
    assert a.url == session_url
    state(a, "waiting")

    # Joon opens the join link signed out: he signs in and lands on the session.
    b_ctx = browser.new_context(viewport=PHONE, locale="en-US")
    b = b_ctx.new_page()
    joon_email = signup(b, server.url, nickname="Joon")
    b.get_by_test_id("logout").click()
    b.goto(f"{server.url}/join/{code}/")
    b.fill("input[name=login]", joon_email)
    b.fill("input[name=password]", PASSWORD)
    b.get_by_role("button", name="Sign In").click()
    wait_socket(b)
    assert b.url == session_url

    learners = coach.get_by_test_id("dashboard-learner")
    expect(learners).to_have_count(2)
    expect(coach.locator("[data-testid=dashboard-learner][data-online=true]")).to_have_count(2)

    # Three steps, followed live.
    coach.get_by_test_id("next-step").click()
    for page in (a, b, coach):
        state(page, "running")
        expect(page.get_by_test_id("session-step")).to_contain_text("1 of 4")
    expect(a.get_by_test_id("class-question")).to_have_text(QUESTIONS[0])
    a.get_by_test_id("answer-input").fill("I led a small team and we shipped on time.")
    expect(a.get_by_test_id("class-answer").get_by_test_id("dictate")).to_be_visible()
    a.get_by_test_id("send-answer").click()
    expect(a.get_by_test_id("answer-saved")).to_be_visible()
    minji_row = learners.filter(has_text="Minji")
    expect(minji_row).to_have_attribute("data-answered", "true")
    expect(minji_row).to_contain_text("I led a small team")
    # Minji asks for AI feedback on it: one of her own five replies today.
    ask = a.get_by_test_id("ask-ai-feedback")
    expect(ask).to_have_text("Get AI feedback (uses 1 of your 5 left today)")
    ask.click()
    expect(a.get_by_test_id("ai-feedback")).to_have_attribute("data-status", "complete")
    expect(a.get_by_test_id("ai-feedback").get_by_test_id("rubric")).to_be_visible()
    expect(a.get_by_test_id("quota")).to_have_text("4")
    expect(minji_row.get_by_test_id("dashboard-ai")).to_have_attribute("data-status", "complete")
    SHOTS.mkdir(parents=True, exist_ok=True)
    a.screenshot(path=str(SHOTS / "class-learner-ai-feedback-phone.png"), full_page=True)

    for step in (2, 3):
        coach.get_by_test_id("next-step").click()
        for page in (a, b):
            expect(page.get_by_test_id("session-step")).to_contain_text(f"{step} of 4")
    expect(b.get_by_test_id("class-question")).to_have_text(QUESTIONS[2])
    expect(minji_row).to_have_attribute("data-answered", "false")
    coach.get_by_test_id("prev-step").click()
    expect(a.get_by_test_id("session-step")).to_contain_text("2 of 4")
    coach.get_by_test_id("next-step").click()
    expect(a.get_by_test_id("session-step")).to_contain_text("3 of 4")

    # Joon asks for help; the coach sees it at once and resolves it.
    b.get_by_test_id("hand-note").fill("How long should this answer be?")
    b.get_by_test_id("raise-hand").click()
    expect(b.get_by_test_id("lower-hand")).to_be_visible()
    hand = coach.get_by_test_id("hand-item")
    expect(hand).to_contain_text("How long should this answer be?")
    expect(coach.get_by_test_id("hand-alert")).to_contain_text("Joon raised a hand")
    expect(learners.filter(has_text="Joon")).to_have_attribute("data-hand", "true")
    b.get_by_test_id("answer-input").fill("Because I enjoy helping people grow.")
    b.get_by_test_id("send-answer").click()
    expect(b.get_by_test_id("answer-saved")).to_be_visible()

    # On a phone the coach's header (Classes, a long name) and a learner's both fit.
    assert header_overflow(coach) == []
    assert header_overflow(b) == []
    expect(coach.get_by_test_id("language-switch")).to_be_visible()
    SHOTS.mkdir(parents=True, exist_ok=True)
    coach.screenshot(path=str(SHOTS / "class-coach-phone.png"), full_page=True)
    b.screenshot(path=str(SHOTS / "class-learner-phone.png"), full_page=True)

    coach.get_by_test_id("resolve-hand").click()
    expect(hand).to_have_count(0)
    expect(b.get_by_test_id("hand-status")).to_have_attribute("data-state", "resolved")

    # Pause and resume.
    coach.get_by_test_id("pause-session").click()
    for page in (a, b):
        state(page, "paused")
    a.screenshot(path=str(SHOTS / "class-learner-paused-phone.png"), full_page=True)
    # On a phone the help note takes its own row, so its whole hint shows (it was cut off).
    note, form = (
        a.get_by_test_id("hand-note").bounding_box(),
        a.locator(".raise-form").bounding_box(),
    )
    assert note is not None and form is not None and note["width"] >= 0.95 * form["width"]
    coach.get_by_test_id("resume-session").click()
    for page in (a, b):
        state(page, "running")

    # A reload (a reconnect) lands on the same question with the answer kept.
    b.reload()
    wait_socket(b)
    expect(b.get_by_test_id("session-step")).to_contain_text("3 of 4")
    expect(b.get_by_test_id("answer-input")).to_have_value("Because I enjoy helping people grow.")

    coach.get_by_test_id("end-session").click()
    for page in (a, b, coach):
        state(page, "ended")

    # The report, from the class page.
    coach.get_by_role("link", name="Class page").click()
    expect(coach.get_by_test_id("activity-csv")).to_be_visible()
    coach.get_by_test_id("report-link").first.click()
    report = coach.get_by_test_id("session-report")
    expect(report).to_contain_text("2 joined, 2 answered")
    expect(report).to_contain_text("I led a small team")
    expect(report.get_by_test_id("report-hands")).to_contain_text("How long should this answer be?")
    csv = coach.request.get(server.url + coach.get_by_test_id("activity-csv").get_attribute("href"))
    assert csv.ok and "hand_resolved" in csv.text() and "pause" in csv.text()

    expect(report.get_by_test_id("report-ai-feedback")).to_have_count(1)
    a.get_by_test_id("report-link").click()
    expect(a.get_by_test_id("session-report")).to_contain_text("I led a small team")
    expect(a.get_by_test_id("report-ai-feedback").get_by_test_id("rubric")).to_be_visible()
    for ctx in (coach_ctx, a_ctx, b_ctx):
        ctx.close()
