"""Read aloud and dictation in a real browser: Chromium's fake microphone plays a WAV made
here, the fake model server transcribes it and reads replies aloud; without a model server
the browser's own speech, and without any speech API no buttons at all."""

from __future__ import annotations

import json
import math
import os
import re
import struct
import threading
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserType, Page, expect

from tests.e2e.conftest import CHROMIUM_ARGS, _server_env
from tests.e2e.helpers import send, signup, start_practice, wait_socket
from tests.fakes.fake_openai import DEFAULT_TRANSCRIPT
from tests.serverproc import DaphneServer

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}


def write_tone(path: Path, seconds: float = 4.0, rate: int = 16000) -> Path:
    """A WAV of a spoken-pitch tone for Chromium's fake microphone (it loops the file)."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        frames = b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 220 * i / rate)))
            for i in range(int(seconds * rate))
        )
        wav.writeframes(frames)
    return path


@pytest.fixture(scope="module")
def voice_server(
    compiled_messages: None,
    django_db_setup: None,
    fake_openai: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaphneServer]:
    """The app with the fake model server, storing playable WAV speech in a media folder."""
    media = tmp_path_factory.mktemp("media")
    env = _server_env(fake_openai, SPEECH_FORMAT="wav", MEDIA_ROOT=str(media))
    srv = DaphneServer(env).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def media_browser(
    browser_type: BrowserType,
    browser_type_launch_args: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Browser]:
    """A Chromium of its own with a fake microphone (the shared one keeps its arguments)."""
    tone = write_tone(tmp_path_factory.mktemp("mic") / "answer.wav")
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={tone}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    browser = browser_type.launch(**{**browser_type_launch_args, "args": args})
    yield browser
    browser.close()


@pytest.fixture
def media_page(media_browser: Browser) -> Iterator[Page]:
    context = media_browser.new_context(locale="en-US")
    context.grant_permissions(["microphone"])
    yield context.new_page()
    context.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """new_page(locale=..., init_script=..., viewport=...) → a page in a fresh context."""
    contexts = []

    def open_(locale: str = "en-US", init_script: str = "", **options: Any) -> Page:
        context = browser.new_context(locale=locale, **options)
        if init_script:
            context.add_init_script(init_script)
        contexts.append(context)
        return context.new_page()

    yield open_
    for context in contexts:
        context.close()


def conversation_id(page: Page) -> str:
    match = re.search(r"/c/([0-9a-f-]{36})/", page.url)
    assert match, page.url
    return match.group(1)


def test_dictated_answer_is_transcribed_into_the_box_and_sent_with_its_pace(
    media_page: Page, voice_server: DaphneServer, fake_openai: Any, db_access: None
) -> None:
    from chat.models import Message

    page = media_page
    signup(page, voice_server.url)
    start_practice(page, voice_server.url)
    fake_openai.clear()
    dictate = page.get_by_test_id("dictate")
    status = page.get_by_test_id("dictate-status")
    box = page.get_by_test_id("composer-input")
    expect(dictate).to_be_visible()
    expect(dictate).to_have_accessible_name("Dictate")

    # Keyboard only: Tab from the box reaches the microphone, Enter starts and stops it.
    box.focus()
    page.keyboard.press("Tab")
    expect(dictate).to_be_focused()
    page.keyboard.press("Enter")
    expect(dictate).to_have_attribute("aria-pressed", "true")
    expect(dictate).to_have_accessible_name("Stop dictating")
    expect(status).to_contain_text("Recording")
    page.wait_for_timeout(2500)
    page.keyboard.press("Enter")

    expect(box).to_have_value(DEFAULT_TRANSCRIPT, timeout=10_000)
    expect(status).to_have_text("Your words are in the box: check them, then press Send.")
    expect(dictate).to_have_attribute("aria-pressed", "false")
    expect(box).to_be_focused()
    (upload,) = [r for r in fake_openai.requests if r.path.endswith("/audio/transcriptions")]
    assert upload.body["files"]["file"]["content_type"].startswith("audio/webm")
    assert upload.body["files"]["file"]["size"] > 1000
    # Nothing reaches the conversation before Send.
    learner_messages = page.locator("[data-testid=message][data-role=user]")
    expect(learner_messages).to_have_count(0)
    seconds = float(page.locator("#speech-seconds").input_value())
    assert 2.0 <= seconds <= 6.0

    box.fill(DEFAULT_TRANSCRIPT + ", and I kept the team informed")  # editable before sending
    page.get_by_test_id("send").click()
    expect(learner_messages).to_have_count(1)
    # The accepted send clears the speaking time with the box.
    expect(page.locator("#speech-seconds")).to_have_value("")

    stored = Message.objects.get(conversation_id=conversation_id(page), role="user")
    assert stored.content.endswith("and I kept the team informed")
    assert stored.metadata["speech"]["duration_seconds"] == pytest.approx(seconds, abs=0.01)
    words_per_minute = len(stored.content.split()) / (seconds / 60)
    assert 150 < words_per_minute < 1000


def test_coach_message_is_read_aloud_by_the_model_server_with_range_requests(
    new_page: Callable[..., Page], voice_server: DaphneServer, fake_openai: Any
) -> None:
    page = new_page()
    signup(page, voice_server.url)
    start_practice(page, voice_server.url)
    opening = page.locator("[data-testid=message][data-role=assistant]").first
    play = opening.get_by_test_id("read-aloud")
    expect(play).to_have_accessible_name("Read aloud")
    with page.expect_response(re.compile(r"/speech/[0-9a-f-]{36}/$")) as audio:
        play.click()
    response = audio.value
    assert response.status in (200, 206)
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["accept-ranges"] == "bytes"
    expect(play).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("read-status")).to_have_text("Reading the message aloud.")
    # The clip is silence a few seconds long: it ends by itself and the button resets.
    expect(play).to_have_attribute("aria-pressed", "false", timeout=15_000)
    assert len([r for r in fake_openai.requests if r.path.endswith("/audio/speech")]) >= 1

    # A second message starting stops the first.
    send(page, "I led a project. [[fake:tokens=30]]")
    reply = page.locator("[data-testid=message][data-role=assistant]").nth(1)
    expect(reply).to_have_attribute("data-status", "complete", timeout=10_000)
    play.click()
    expect(play).to_have_attribute("aria-pressed", "true")
    reply.get_by_test_id("read-aloud").click()
    expect(reply.get_by_test_id("read-aloud")).to_have_attribute("aria-pressed", "true")
    expect(play).to_have_attribute("aria-pressed", "false")


# Records what the page asks the browser's speech synthesis to say (headless Chromium has
# no voices), finishing each utterance after a moment.
FAKE_SYNTH = """
(() => {
  window.__spoken = [];
  const synth = {
    speaking: false, pending: false,
    getVoices: () => [{lang: "en-US", name: "English"}, {lang: "ko-KR", name: "Korean"}],
    speak(u) {
      const voice = u.voice && u.voice.name;
      window.__spoken.push({text: u.text, lang: u.lang, rate: u.rate, voice: voice});
      this.speaking = true;
      this._timer = setTimeout(() => { this.speaking = false; u.onend && u.onend(); }, 1500);
      this._current = u;
    },
    cancel() {
      clearTimeout(this._timer);
      if (this._current) { const u = this._current; this._current = null;
        this.speaking = false; u.onerror && u.onerror({error: "interrupted"}); }
    },
    addEventListener() {},
  };
  Object.defineProperty(window, "speechSynthesis", {value: synth});
  window.SpeechSynthesisUtterance = function (text) { this.text = text; };
})();
"""

NO_SPEECH_APIS = """
(() => {
  for (const name of ["speechSynthesis", "SpeechSynthesisUtterance", "SpeechRecognition",
                      "webkitSpeechRecognition", "MediaRecorder"]) {
    try { delete window[name]; } catch (e) {}
    Object.defineProperty(window, name, {value: undefined, configurable: true});
  }
})();
"""


def test_offline_the_browser_reads_aloud_in_the_messages_language_at_the_chosen_speed(
    new_page: Callable[..., Page], offline_server: DaphneServer
) -> None:
    page = new_page(init_script=FAKE_SYNTH)
    signup(page, offline_server.url)
    page.goto(offline_server.url + "/profile/")
    page.get_by_test_id("profile-speech_rate").fill("1.5")
    page.get_by_test_id("profile-save").click()
    expect(page.get_by_text("Saved.")).to_be_visible()

    start_practice(page, offline_server.url)
    opening = page.locator("[data-testid=message][data-role=assistant]").first
    play = opening.get_by_test_id("read-aloud")
    play.focus()
    page.keyboard.press("Enter")
    expect(play).to_have_attribute("aria-pressed", "true")
    expect(play).to_have_accessible_name("Stop reading")
    spoken = page.evaluate("window.__spoken")
    assert spoken[0]["lang"] == "en-US"
    assert spoken[0]["voice"] == "English"
    assert spoken[0]["rate"] == 1.5
    assert spoken[0]["text"] == opening.locator(".body").inner_text().strip()
    expect(play).to_have_attribute("aria-pressed", "false", timeout=5_000)

    # Pressing it again while it plays stops it; hiding the page stops it too.
    play.click()
    expect(play).to_have_attribute("aria-pressed", "true")
    play.click()
    expect(play).to_have_attribute("aria-pressed", "false")
    play.click()
    page.evaluate(
        "Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    expect(play).to_have_attribute("aria-pressed", "false")


def test_auto_read_reads_the_next_question_when_it_arrives(
    new_page: Callable[..., Page], offline_server: DaphneServer
) -> None:
    page = new_page(init_script=FAKE_SYNTH)
    signup(page, offline_server.url)
    page.goto(offline_server.url + "/profile/")
    page.get_by_test_id("profile-auto_read").check()
    page.get_by_test_id("profile-save").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    start_practice(page, offline_server.url)
    assert page.evaluate("window.__spoken") == []  # the opening line waits for the learner

    send(page, "I organised our team's move to a new office last spring.")
    reply = page.locator("[data-testid=message][data-role=assistant]").nth(1)
    expect(reply).to_have_attribute("data-status", "complete", timeout=15_000)
    expect(reply.get_by_test_id("read-aloud")).to_have_attribute("aria-pressed", "true")
    spoken = page.evaluate("window.__spoken")
    assert len(spoken) == 1
    assert spoken[0]["text"] == reply.locator(".body").inner_text().strip()


def test_without_speech_apis_or_a_model_server_the_page_works_without_the_buttons(
    new_page: Callable[..., Page], offline_server: DaphneServer
) -> None:
    page = new_page(init_script=NO_SPEECH_APIS)
    signup(page, offline_server.url)
    start_practice(page, offline_server.url)
    expect(page.get_by_test_id("read-aloud").first).to_be_hidden()
    expect(page.get_by_test_id("dictate")).to_be_hidden()
    send(page, "I led the launch of our mobile app.")
    expect(page.locator("[data-testid=message][data-role=user]")).to_have_count(1)
    reply = page.locator("[data-testid=message][data-role=assistant]").nth(1)
    expect(reply).to_have_attribute("data-status", "complete", timeout=15_000)


def test_a_blocked_microphone_is_explained(
    new_page: Callable[..., Page], voice_server: DaphneServer
) -> None:
    deny = (
        "navigator.mediaDevices.getUserMedia = () => "
        "Promise.reject(new DOMException('denied', 'NotAllowedError'));"
    )
    page = new_page(init_script=deny)
    signup(page, voice_server.url)
    start_practice(page, voice_server.url)
    page.get_by_test_id("dictate").click()
    expect(page.get_by_test_id("dictate-status")).to_contain_text("The microphone is blocked")
    expect(page.get_by_test_id("dictate")).to_have_attribute("aria-pressed", "false")
    expect(page.get_by_test_id("composer-input")).to_have_value("")


def test_korean_phone_pages_with_the_voice_buttons(
    new_page: Callable[..., Page], voice_server: DaphneServer, tmp_path: Path
) -> None:
    """Korean at 390×844: the buttons are labelled in Korean and nothing overflows the width.

    Screenshots go to VOICE_SCREENSHOTS (a folder) when it is set, else to the test's tmp dir.
    """
    folder = Path(os.environ.get("VOICE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    signup(page, voice_server.url, nickname="김민지")
    page.goto(voice_server.url + "/profile/")
    page.get_by_test_id("profile-language").select_option("ko")
    page.get_by_test_id("profile-save").click()
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    expect(page.get_by_label("질문 소리 내어 읽기")).to_be_visible()
    page.screenshot(path=str(folder / "ko-profile.png"), full_page=True)

    page.goto(voice_server.url + "/new/")
    expect(page.get_by_text("행동 면접 (STAR)")).to_be_visible()
    page.screenshot(path=str(folder / "ko-coaches.png"), full_page=True)

    start_practice(page, voice_server.url, slug="interview-behavioural")
    wait_socket(page)
    expect(page.get_by_test_id("dictate")).to_have_text("말로 입력")
    expect(page.get_by_test_id("read-aloud").first).to_have_text("소리 내어 읽기")
    send(page, "저는 결제 시스템 이전을 이끌었어요.")
    reply = page.locator("[data-testid=message][data-role=assistant]").nth(1)
    expect(reply).to_have_attribute("data-status", "complete", timeout=10_000)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    page.screenshot(path=str(folder / "ko-practice.png"))
    (folder / "ko-pages.json").write_text(json.dumps({"practice": page.url}))


def test_korean_phone_dictation_is_announced_in_korean(
    media_browser: Browser, voice_server: DaphneServer, tmp_path: Path
) -> None:
    folder = Path(os.environ.get("VOICE_SCREENSHOTS") or tmp_path)
    context = media_browser.new_context(
        locale="en-US", viewport=PHONE, is_mobile=True, has_touch=True
    )
    try:
        page = context.new_page()
        signup(page, voice_server.url, nickname="이서준")
        page.goto(voice_server.url + "/profile/")
        page.get_by_test_id("profile-language").select_option("ko")
        page.get_by_test_id("profile-save").click()
        expect(page.locator("html")).to_have_attribute("lang", "ko")
        start_practice(page, voice_server.url)
        dictate = page.get_by_test_id("dictate")
        status = page.get_by_test_id("dictate-status")
        dictate.click()
        expect(status).to_have_text("녹음 중이에요… 말씀하신 뒤 ‘말로 입력 멈추기’를 누르세요.")
        expect(dictate).to_have_text("말로 입력 멈추기")
        page.screenshot(path=str(folder / "ko-dictating.png"))
        page.wait_for_timeout(1500)
        dictate.click()
        expect(page.get_by_test_id("composer-input")).to_have_value(DEFAULT_TRANSCRIPT)
        expect(status).to_have_text(
            "말씀하신 내용이 입력창에 들어갔어요. 확인한 뒤 ‘보내기’를 누르세요."
        )
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
        page.screenshot(path=str(folder / "ko-dictated.png"))
    finally:
        context.close()


# A stand-in for the browser's speech recognition (Chromium's needs Google's servers): an
# interim result, then a final one, then the end when the learner stops.
FAKE_RECOGNITION = """
(() => {
  window.__recognition = [];
  window.SpeechRecognition = window.webkitSpeechRecognition = function () {
    const rec = this;
    window.__recognition.push(rec);
    rec.start = () => {
      const result = (text, final) => Object.assign([{transcript: text}], {isFinal: final});
      setTimeout(() => rec.onresult({results: [result("I led", false)]}), 200);
      const final = result("I led the team through a hard launch", true);
      setTimeout(() => rec.onresult({results: [final]}), 600);
    };
    rec.stop = () => setTimeout(() => rec.onend(), 50);
  };
})();
"""


def test_offline_dictation_puts_the_live_transcript_in_the_box(
    new_page: Callable[..., Page], offline_server: DaphneServer, db_access: None
) -> None:
    from chat.models import Message

    page = new_page(init_script=FAKE_RECOGNITION)
    signup(page, offline_server.url)
    start_practice(page, offline_server.url)
    box = page.get_by_test_id("composer-input")
    box.fill("Well,")
    page.get_by_test_id("dictate").click()
    expect(page.get_by_test_id("dictate-status")).to_contain_text("Listening")
    expect(box).to_have_value("Well, I led")  # interim words show as they come
    expect(box).to_have_value("Well, I led the team through a hard launch")
    assert page.evaluate("window.__recognition[0].lang") == "en-US"
    page.wait_for_timeout(400)
    page.get_by_test_id("dictate").click()
    expect(page.get_by_test_id("dictate-status")).to_contain_text("check them, then press Send")
    seconds = float(page.locator("#speech-seconds").input_value())
    assert seconds > 0.5
    expect(page.locator("[data-testid=message][data-role=user]")).to_have_count(0)
    box.press("Enter")
    expect(page.locator("[data-testid=message][data-role=user]")).to_have_count(1)
    stored = Message.objects.get(conversation_id=conversation_id(page), role="user")
    assert stored.metadata["speech"]["duration_seconds"] == pytest.approx(seconds, abs=0.01)


def test_a_class_answer_is_dictated_into_the_answer_box_with_its_pace(
    media_page: Page, voice_server: DaphneServer, fake_openai: Any, db_access: None
) -> None:
    from accounts.models import User
    from chat.classes import services as classes
    from chat.models import ClassAnswer

    def running_session() -> Any:
        coach = User.objects.create_user(email=f"coach-{os.getpid()}@example.com", role="coach")
        klass = classes.class_create(coach=coach, title="Voice class", questions="Why this job?")
        session = classes.session_start(klass=klass, by=coach)
        return classes.session_move(session_id=session.pk, by=coach, move="next")

    # In a thread of its own: the services publish after commit, and this thread runs
    # Playwright's event loop.
    made: list[Any] = []
    worker = threading.Thread(target=lambda: made.append(running_session()))
    worker.start()
    worker.join(timeout=20)
    (session,) = made
    page = media_page
    email = signup(page, voice_server.url)
    page.goto(f"{voice_server.url}/join/{session.join_code}/")
    wait_socket(page)
    fake_openai.clear()
    answer_box = page.get_by_test_id("class-answer")
    dictate = answer_box.get_by_test_id("dictate")
    expect(dictate).to_be_visible()
    dictate.click()
    expect(dictate).to_have_attribute("aria-pressed", "true")
    page.wait_for_timeout(2500)
    dictate.click()
    expect(page.get_by_test_id("answer-input")).to_have_value(DEFAULT_TRANSCRIPT, timeout=10_000)
    seconds = float(page.locator("#answer-seconds").input_value())
    assert 2.0 <= seconds <= 6.0
    page.get_by_test_id("send-answer").click()
    expect(page.get_by_test_id("answer-pace")).to_contain_text("words per minute")
    stored = ClassAnswer.objects.get(session=session, user__email=email)
    assert stored.analysis["speech"]["duration_seconds"] == pytest.approx(seconds, abs=0.01)
    assert stored.analysis["words_per_minute"] > 0
