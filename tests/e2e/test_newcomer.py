"""What a newcomer meets in the first ten minutes, on a phone and a laptop, in two time zones."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.helpers import header_overflow, last_reply, send, signup, start_practice, wait_socket
from tests.fakes.fake_openai import DEFAULT_TITLE

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
NEW_YORK = "America/New_York"
SEOUL = "Asia/Seoul"


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """A page in a context of its own: a viewport, a time zone, a colour scheme."""
    contexts: list[Any] = []

    def make(viewport: dict[str, int] = DESKTOP, tz: str = NEW_YORK, scheme: str = "light") -> Page:
        context = browser.new_context(
            viewport=viewport,
            timezone_id=tz,
            locale="en-US",
            color_scheme=scheme,  # type: ignore[arg-type]
            has_touch=viewport is PHONE,
        )
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.mark.parametrize(
    ("tz", "viewport", "reset_clock"),
    [(NEW_YORK, PHONE, "10:00 AM"), (SEOUL, DESKTOP, "12:00 AM")],
)
def test_empty_quota_is_told_before_typing_with_one_reset_moment(
    open_page, server, db_access, tz, viewport, reset_clock
) -> None:
    from accounts.models import User

    page = open_page(viewport=viewport, tz=tz)
    email = signup(page, server.url)
    User.objects.filter(email=email).update(daily_ai_limit=1)
    start_practice(page, server.url)
    expect(page.get_by_test_id("quota-empty")).to_be_hidden()
    send(page, "My only answer today.")
    expect(page.get_by_test_id("message").filter(has_text="My only answer today.")).to_have_count(1)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")

    expect(page.get_by_test_id("quota")).to_have_text("0")
    hint = page.get_by_test_id("quota-empty")
    expect(hint).to_be_visible()
    expect(hint.locator("time")).to_contain_text(reset_clock)
    # Send stays on: the coach will not answer, but an answer still gets its free feedback.
    expect(page.get_by_test_id("send")).to_be_enabled()
    # The badge and the hint name the same moment, with its day.
    badge_reset = page.locator("#quota-box time").inner_text()
    assert badge_reset == hint.locator("time").inner_text()
    assert badge_reset.split()[0] in ("today", "tomorrow")

    # Every page shows the count and reset in the header.
    page.goto(server.url + "/rooms/")
    expect(page.get_by_test_id("quota")).to_have_text("0")
    expect(page.locator("#quota-box time")).to_have_text(badge_reset)


def offset_in(message: Any, selector: str) -> float:
    """How far below its message's top an element sits (the list may scroll meanwhile)."""
    return message.evaluate(
        "(m, s) => m.querySelector(s).getBoundingClientRect().top - m.getBoundingClientRect().top",
        selector,
    )


MARKDOWN_ANSWER = (
    "**Situation** comes first.\n\n| part | score |\n|---|---|\n| STAR | 4 |\n\n"
    + " ".join(f"word{i}" for i in range(40))
    + " [[fake:echo,delay=0.08]]"
)


@pytest.mark.parametrize(("tz", "viewport"), [(SEOUL, PHONE), (NEW_YORK, DESKTOP)])
def test_streamed_markdown_is_rendered_as_blocks_close_and_does_not_jump(
    open_page, server, tz, viewport
) -> None:
    page = open_page(viewport=viewport, tz=tz)
    signup(page, server.url)
    start_practice(page, server.url)
    box = page.get_by_test_id("composer-input")
    box.fill(MARKDOWN_ANSWER)
    box.press("Enter")

    reply = page.locator("[data-testid=message][data-role=assistant][data-status=streaming]")
    expect(reply.locator(".blocks strong")).to_have_text("Situation", timeout=10_000)
    expect(reply.locator(".blocks table td").first).to_have_text("STAR")
    assert "**" not in reply.inner_text() and "|---|" not in reply.inner_text()
    table_top = offset_in(reply, "table")

    done = last_reply(page)
    expect(done).to_have_attribute("data-status", "complete", timeout=15_000)
    # What was shown while streaming stays where it was: no re-render jump.
    assert abs(offset_in(done, "table") - table_top) < 2


@pytest.fixture
def own_server(django_db_setup: None, django_db_blocker: Any, fake_openai: Any) -> Iterator[Any]:
    """A daphne of this test's own, to stop and start again on the same port."""
    from django.db import connection

    from tests.serverproc import DaphneServer

    with django_db_blocker.unblock():
        name = str(connection.settings_dict["NAME"])
    env = {
        "SQLITE_PATH": name,
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": "test-key",
        "AI_DAILY_LIMIT": "5",
        "STREAM_SAVE_INTERVAL": "0.1",
        "REPLY_STALE_SECONDS": "1",  # a killed process's reply is ended soon after it comes back
    }
    servers = [DaphneServer(env).start()]
    yield servers
    for srv in servers:
        srv.stop()


def test_a_lost_connection_is_said_sends_are_refused_and_back_online_is_announced(
    open_page, own_server
) -> None:
    import signal

    from tests.serverproc import DaphneServer

    first = own_server[0]
    page = open_page(viewport=PHONE, tz=SEOUL)
    signup(page, first.url)
    start_practice(page, first.url)
    send(page, "Tell me about it [[fake:tokens=400,delay=0.03]]")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(reply.locator(".body")).not_to_be_empty()

    first.stop(signal.SIGKILL)  # gone mid-reply: no final frame, no goodbye
    status = page.get_by_test_id("connection")
    expect(status).to_have_text("Reconnecting…")
    expect(status).to_have_attribute("aria-live", "assertive")
    expect(reply).to_have_attribute("data-waiting", "true")
    expect(reply.locator(".cursor")).to_be_hidden()
    send(page, "Sent while offline")
    expect(page.get_by_test_id("notice")).to_contain_text("Not connected")
    expect(page.get_by_test_id("composer-input")).to_have_value("Sent while offline")

    own_server.append(DaphneServer(first.env, port=first.port).start())
    expect(status).to_have_text("Back online.", timeout=15_000)
    expect(page.get_by_test_id("notice")).to_be_empty()
    expect(reply).not_to_have_attribute("data-status", "streaming", timeout=10_000)
    expect(status).to_be_hidden(timeout=10_000)


def test_status_text_clears_when_its_cause_ends(open_page, server, db_access) -> None:
    import uuid

    from accounts.models import User
    from tests.e2e.test_rooms import create_room

    ahn = open_page(viewport=DESKTOP, tz=SEOUL)
    email = signup(ahn, server.url, nickname="Ahn")
    User.objects.filter(email=email).update(daily_ai_limit=0)
    room_url = create_room(ahn, server.url, f"Status {uuid.uuid4().hex[:6]}")
    mina = open_page(viewport=PHONE, tz=NEW_YORK)
    signup(mina, server.url, nickname="Mina")
    mina.goto(room_url)
    mina.get_by_test_id("join-room").click()
    wait_socket(mina)

    # The room's quota notice goes once someone else's message arrives.
    send(ahn, "@coach can you help?")
    expect(ahn.get_by_test_id("notice")).to_contain_text("used all of today's AI replies")
    # "Mina is typing…" goes as soon as her message arrives, not 4 s later.
    mina.get_by_test_id("composer-input").press_sequentially("Hel")
    expect(ahn.get_by_test_id("typing")).to_contain_text("Mina is typing")
    mina.get_by_test_id("composer-input").fill("Hello Ahn")
    mina.get_by_test_id("composer-input").press("Enter")
    expect(ahn.get_by_test_id("message").filter(has_text="Hello Ahn")).to_have_count(1)
    expect(ahn.get_by_test_id("typing")).to_be_empty(timeout=1_500)
    expect(ahn.get_by_test_id("notice")).to_be_empty(timeout=1_500)

    # "The coach is still answering" goes when the reply finished.
    start_practice(mina, server.url)
    send(mina, "A long one [[fake:tokens=30,delay=0.05]]")
    expect(last_reply(mina)).to_have_attribute("data-status", "streaming")
    send(mina, "And another")
    expect(mina.get_by_test_id("notice")).to_contain_text("still answering")
    expect(last_reply(mina)).to_have_attribute("data-status", "complete", timeout=10_000)
    expect(mina.get_by_test_id("notice")).to_be_empty(timeout=1_500)


def shoot(page: Page, name: str) -> None:
    """Keep a screenshot when SCREENSHOT_DIR is set (for people to look at; tests never need it)."""
    import os

    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=f"{folder}/{name}.png", full_page=False)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_phone_layout_fits_with_the_offline_coach(open_page, offline_server, scheme) -> None:
    page = open_page(viewport=PHONE, tz=SEOUL, scheme=scheme)
    signup(page, offline_server.url)
    shoot(page, f"phone-home-{scheme}")
    start_practice(page, offline_server.url)
    send(page, "I led a team of four to ship a payments feature on time.")
    expect(page.locator("[data-testid=message][data-role=assistant]")).to_have_count(2)
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    shoot(page, f"phone-practice-{scheme}")

    # The header is one line: "Log out" sits beside the brand, not below it.
    brand = page.locator(".brand").bounding_box()
    logout = page.get_by_test_id("logout").bounding_box()
    assert brand and logout and abs(logout["y"] - brand["y"]) < brand["height"]
    assert logout["x"] + logout["width"] <= PHONE["width"]
    # Nothing of the header hides past the edge: the places and the language are a second line.
    assert header_overflow(page) == []
    expect(page.get_by_test_id("language-switch")).to_be_visible()
    expect(page.get_by_test_id("nav-progress")).to_be_visible()
    wide = page.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 391"
        " && !e.closest('.nav')).map(e => e.tagName + '.' + e.className)"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], wide
    # A small badge for learners; the configuration hint is not theirs.
    badge = page.get_by_test_id("offline-mode")
    expect(badge).to_be_visible()
    expect(badge).not_to_contain_text("OPENAI_API_KEY")
    assert badge.bounding_box()["height"] < 40  # type: ignore[index]
    # The message list gets most of the screen and the composer stays on it.
    assert page.get_by_test_id("messages").bounding_box()["height"] >= 420  # type: ignore[index]
    composer = page.get_by_test_id("composer").bounding_box()
    assert composer and composer["y"] + composer["height"] <= PHONE["height"]

    page.goto(offline_server.url + "/rooms/")
    shoot(page, f"phone-rooms-{scheme}")
    from tests.e2e.test_rooms import create_room

    create_room(page, offline_server.url, f"Phone room {scheme}")
    # The empty-room hint sits inside the message box it talks about.
    expect(page.locator("#messages [data-testid=room-empty]")).to_be_visible()
    shoot(page, f"phone-room-{scheme}")
    # The room's composer is on screen too, without scrolling the page.
    composer = page.get_by_test_id("composer").bounding_box()
    assert composer and composer["y"] + composer["height"] <= PHONE["height"], composer


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_desktop_pages_in_light_and_dark(open_page, offline_server, scheme) -> None:
    page = open_page(viewport=DESKTOP, tz=NEW_YORK, scheme=scheme)
    signup(page, offline_server.url)
    shoot(page, f"desktop-home-{scheme}")
    start_practice(page, offline_server.url)
    send(page, "I led a team of four to ship a payments feature on time.")
    expect(page.locator("[data-testid=message][data-role=assistant]")).to_have_count(2)
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    shoot(page, f"desktop-practice-{scheme}")
    page.goto(offline_server.url + "/")
    shoot(page, f"desktop-history-{scheme}")
    page.goto(offline_server.url + "/rooms/")
    shoot(page, f"desktop-rooms-{scheme}")
    expect(page.get_by_test_id("quota")).to_be_visible()


@pytest.mark.parametrize(("tz", "viewport"), [(NEW_YORK, PHONE), (SEOUL, DESKTOP)])
def test_the_history_is_scannable(open_page, server, tz, viewport) -> None:
    page = open_page(viewport=viewport, tz=tz)
    signup(page, server.url)
    start_practice(page, server.url)
    send(page, "I rebuilt our onboarding flow and cut drop-off by a third in two months.")
    expect(page.locator("[data-testid=message][data-role=assistant]")).to_have_count(2)
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=10_000)
    # This server has a model: it names the conversation, and the tab title follows.
    expect(page).to_have_title(f"{DEFAULT_TITLE} · Practalk")

    page.goto(server.url + "/")
    expect(page.get_by_test_id("history-day").first.locator("h2")).to_have_text("Today")
    row = page.get_by_test_id("conversation-item").first
    expect(row.locator(".title")).to_have_text(DEFAULT_TITLE)
    expect(row.get_by_test_id("conversation-snippet")).not_to_be_empty()
    expect(row.get_by_test_id("conversation-state")).to_have_text("Your turn")
    expect(row.locator("time")).to_have_text(re.compile(r"now|second|minute"))
    assert not re.search(r"\d{4}-\d{2}-\d{2}", row.inner_text())  # no frozen date
    shoot(page, f"history-{'phone' if viewport is PHONE else 'desktop'}")


@pytest.mark.parametrize(("tz", "viewport"), [(SEOUL, PHONE), (NEW_YORK, DESKTOP)])
def test_a_model_names_the_conversation_after_its_first_reply(
    open_page, server, fake_openai, tz, viewport
) -> None:
    from tests.fakes.fake_openai import Script

    # The title comes a moment after the reply: the first answer's title shows until then.
    fake_openai.script = Script(tokens=10, title="**Shipping payments on time**", title_delay=1.5)
    try:
        page = open_page(viewport=viewport, tz=tz)
        signup(page, server.url)
        start_practice(page, server.url)
        heading = page.locator("#conv-title")
        send(page, "I led a team of four to ship a payments feature on time.")
        expect(heading).to_have_text("I led a team of four to ship a payments feature on time.")
        expect(page).to_have_title(re.compile(r"^I led a team of four"))
        expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=10_000)

        expect(heading).to_have_text("Shipping payments on time", timeout=10_000)
        expect(page).to_have_title("Shipping payments on time · Practalk")
        shoot(page, f"model-title-{'phone' if viewport is PHONE else 'desktop'}")
        page.reload()
        expect(heading).to_have_text("Shipping payments on time")
        page.goto(server.url + "/")
        row = page.get_by_test_id("conversation-item").first
        expect(row.locator(".title")).to_have_text("Shipping payments on time")
    finally:
        fake_openai.script = Script()


def test_renaming_changes_the_tab_title(open_page, server) -> None:
    page = open_page(viewport=DESKTOP, tz=SEOUL)
    signup(page, server.url)
    start_practice(page, server.url)
    page.locator("details.menu > summary").click()
    page.get_by_test_id("rename-input").fill("Mock for Toss")
    page.get_by_test_id("rename").click()

    expect(page.locator("#conv-title")).to_have_text("Mock for Toss")
    expect(page).to_have_title("Mock for Toss · Practalk")


def test_keyboard_and_screen_reader(open_page, server) -> None:
    page = open_page(viewport=DESKTOP, tz=NEW_YORK)
    signup(page, server.url)
    start_practice(page, server.url)
    box = page.get_by_test_id("composer-input")
    expect(box).to_be_focused()  # ready to type when the conversation opens

    page.locator("details.menu > summary").click()
    expect(page.locator("details.menu")).to_have_attribute("open", "")
    page.keyboard.press("Escape")
    expect(page.locator("details.menu")).not_to_have_attribute("open", "")

    # Times are localised once: a reply's token frames leave every <time> alone.
    page.evaluate(
        """() => {
        window.timeChanges = 0;
        new MutationObserver(records => {
          for (const r of records) {
            const node = r.target.nodeType === 3 ? r.target.parentNode : r.target;
            if (node && node.closest && node.closest("time")) { window.timeChanges++; }
          }
        }).observe(document.getElementById("messages"),
                   {subtree: true, characterData: true, childList: true, attributes: true});
      }"""
    )
    send(page, "A long answer please [[fake:tokens=80,delay=0.02]]")
    reply = page.locator("[data-testid=message][data-role=assistant]").nth(1)
    expect(reply).to_have_attribute("aria-busy", "true")
    expect(reply).to_have_attribute("data-status", "complete", timeout=10_000)
    expect(reply).not_to_have_attribute("aria-busy", "true")
    # Two new messages and one replaced: a few changes each, never one per frame.
    assert page.evaluate("window.timeChanges") <= 12

    # Escape in the composer stops a streaming reply.
    send(page, "Another one [[fake:tokens=200,delay=0.05]]")
    growing = page.locator("[data-testid=message][data-role=assistant]").nth(2)
    expect(growing).to_have_attribute("data-status", "streaming")
    expect(growing.locator(".body")).not_to_be_empty()
    box.focus()
    page.keyboard.press("Escape")
    expect(growing).to_have_attribute("data-status", "stopped")


def test_what_people_expect_from_a_chat_app(open_page, server, db_access) -> None:
    page = open_page(viewport=PHONE, tz=SEOUL)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    signup(page, server.url)
    start_practice(page, server.url)
    # A favicon is linked and /favicon.ico is no 404.
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert icon and page.request.get(server.url + icon).ok
    assert page.request.get(server.url + "/favicon.ico").ok

    # The composer stops at the limit and says how much is left near it.
    box = page.get_by_test_id("composer-input")
    limit = int(box.get_attribute("maxlength") or 0)
    assert limit > 0
    box.fill("x" * (limit - 10))
    expect(page.get_by_test_id("char-counter")).to_have_text(f"10 / {limit}")
    box.fill("")

    # Copy buttons on a reply and on its code blocks.
    box.fill("Show code\n\n```py\nprint('hi')\n```\n\n[[fake:echo]]")
    box.press("Enter")
    reply = page.locator("[data-testid=message][data-role=assistant]").nth(1)
    expect(reply).to_have_attribute("data-status", "complete", timeout=10_000)
    reply.get_by_test_id("copy-code").click()
    assert page.evaluate("navigator.clipboard.readText()").strip() == "print('hi')"
    reply.get_by_test_id("copy").click()
    assert "Show code" in page.evaluate("navigator.clipboard.readText()")

    # Branded error pages.
    response = page.goto(server.url + "/no-such-page/")
    assert response is not None and response.status == 404
    expect(page.get_by_test_id("error-page")).to_contain_text("This page is not here")
    expect(page.locator(".brand")).to_be_visible()


def test_load_older_keeps_the_readers_place(open_page, server, db_access) -> None:
    from accounts.models import User
    from chat.conversations import message_create
    from chat.models import Conversation

    page = open_page(viewport=DESKTOP, tz=NEW_YORK)
    email = signup(page, server.url)
    url = start_practice(page, server.url)
    user = User.objects.get(email=email)
    conversation = Conversation.objects.get(pk=url.rstrip("/").split("/")[-1])
    for i in range(80):
        message_create(conversation=conversation, author=user, content=f"Old line {i}")
    page.goto(url)
    wait_socket(page)
    messages = page.get_by_test_id("messages")
    messages.evaluate("m => { m.scrollTop = 0; }")
    first = page.get_by_test_id("message").first.element_handle()
    before = first.evaluate("e => e.getBoundingClientRect().top")
    page.get_by_test_id("load-older").click()
    expect(page.get_by_test_id("message")).to_have_count(81)
    # The message that was at the top is still where it was, older ones above it.
    after = first.evaluate("e => e.getBoundingClientRect().top")
    assert abs(after - before) < 60


def test_the_demo_learners_first_screen_is_not_empty(open_page, server, db_access) -> None:
    from django.contrib.auth.hashers import PBKDF2PasswordHasher
    from django.core.management import call_command

    from accounts.models import User
    from chat.management.commands.seed_demo import DEMO_PASSWORD

    # In a thread of its own: this one runs Playwright's event loop, and the demo class
    # publishes its events through async_to_sync.
    def seed() -> None:
        from django.db import connection

        try:
            call_command("seed_demo", verbosity=0)
        finally:
            connection.close()

    worker = threading.Thread(target=seed)
    worker.start()
    worker.join(60)
    # Tests hash fast; the server only knows its real hasher.
    hashed = PBKDF2PasswordHasher().encode(DEMO_PASSWORD, "demosalt1234")
    User.objects.filter(email="learner@example.com").update(password=hashed)
    page = open_page(viewport=PHONE, tz=SEOUL)
    page.goto(server.url + "/accounts/login/")
    page.fill("input[name=login]", "learner@example.com")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.get_by_role("button", name="Sign In").click()

    expect(page.get_by_test_id("conversation-item")).to_have_count(1)
    page.get_by_test_id("conversation-item").locator("a").first.click()
    expect(page.get_by_test_id("message")).to_have_count(5)
    page.goto(server.url + "/rooms/")
    page.get_by_test_id("room-item").filter(has_text="English lounge").locator("a").first.click()
    expect(page.locator("[data-testid=message][data-role=user]")).to_have_count(5)


def test_rooms_and_unread_counts_appear_without_reload(open_page, server) -> None:
    import uuid

    from tests.e2e.test_rooms import create_room

    ahn = open_page(viewport=DESKTOP, tz=SEOUL)
    signup(ahn, server.url, nickname="Ahn")
    name = f"Live list {uuid.uuid4().hex[:6]}"
    room_url = create_room(ahn, server.url, name)
    mina = open_page(viewport=PHONE, tz=NEW_YORK)
    signup(mina, server.url, nickname="Mina")
    mina.goto(room_url)
    mina.get_by_test_id("join-room").click()
    wait_socket(mina)
    mina.goto(server.url + "/rooms/")
    later = f"Second room {uuid.uuid4().hex[:6]}"

    # Ahn opens another room and writes in the first: Mina's list and header follow.
    create_room(ahn, server.url, later)
    expect(mina.get_by_test_id("room-item").filter(has_text=later)).to_have_count(1, timeout=15_000)
    ahn.goto(room_url)
    wait_socket(ahn)
    send(ahn, "Anyone here?")
    expect(ahn.get_by_test_id("message").filter(has_text="Anyone here?")).to_have_count(1)
    item = mina.get_by_test_id("room-item").filter(has_text=name)
    expect(item.get_by_test_id("unread")).to_have_text("1", timeout=15_000)
    expect(mina.get_by_test_id("rooms-unread")).to_have_text("1", timeout=20_000)


def test_a_removed_member_stays_out_until_the_owner_lets_them_back(open_page, server) -> None:
    import uuid

    from tests.e2e.test_rooms import create_room

    ahn = open_page(viewport=DESKTOP, tz=SEOUL)
    signup(ahn, server.url, nickname="Ahn")
    room_url = create_room(ahn, server.url, f"Bans {uuid.uuid4().hex[:6]}")
    mina = open_page(viewport=PHONE, tz=NEW_YORK)
    signup(mina, server.url, nickname="Mina")
    mina.goto(room_url)
    mina.get_by_test_id("join-room").click()
    wait_socket(mina)

    ahn.reload()
    wait_socket(ahn)
    ahn.get_by_test_id("room-menu").locator(":scope > summary").click()
    row = ahn.locator("[data-testid=members] li", has_text="Mina")
    row.get_by_test_id("remove-member").locator("summary").click()
    # Asked first: nothing happens until the owner confirms.
    expect(row.get_by_test_id("confirm-remove")).to_be_visible()
    expect(row).to_contain_text("cannot join again")
    row.get_by_test_id("confirm-remove").click()
    expect(mina.get_by_test_id("room-closed")).to_contain_text("no longer a member")

    mina.goto(room_url)
    mina.get_by_test_id("join-room").click()
    expect(mina.locator(".flash")).to_contain_text("removed you from this room")
    assert mina.url.endswith("/rooms/")

    ahn.get_by_test_id("room-menu").locator(":scope > summary").click()
    ahn.get_by_test_id("bans").get_by_test_id("lift-ban").click()
    mina.goto(room_url)
    mina.get_by_test_id("join-room").click()
    wait_socket(mina)
    assert mina.url == room_url


@pytest.mark.parametrize(
    ("viewport", "hint"),
    [
        (PHONE, "Type your answer…"),
        (DESKTOP, "Type your answer… (Enter sends, Shift+Enter for a new line)"),
    ],
    ids=["phone", "desktop"],
)
def test_the_composers_hint_fits_a_phone_and_names_the_keys_on_a_keyboard(
    open_page, server, viewport, hint
) -> None:
    page = open_page(viewport=viewport)
    signup(page, server.url)
    start_practice(page, server.url)
    box = page.get_by_test_id("composer-input")
    expect(box).to_have_attribute("placeholder", hint)
    # A send swaps in a fresh box (out of band): it keeps the hint that fits.
    wait_socket(page)
    send(page, "My first answer.")
    expect(page.get_by_test_id("message").filter(has_text="My first answer.")).to_have_count(1)
    expect(page.locator("[data-testid=message][data-role=assistant]")).to_have_count(2)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(box).to_have_value("")
    expect(box).to_have_attribute("placeholder", hint)
