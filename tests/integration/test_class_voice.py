"""Voice answers in a live class: dictation is transcribed for the session's members only
(the real openai SDK against the fake server), and a dictated answer's pace is analysed."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from chat.models import ClassAnswer, ClassSession, Recording
from tests.fakes.fake_openai import DEFAULT_TRANSCRIPT, FakeOpenAIServer
from tests.integration import test_speech
from tests.integration.classroom import *  # noqa: F403  (the class fixtures)
from tests.integration.test_class_consumer import Page
from tests.integration.test_speech import make_wav

ANSWER = "I led the billing migration and we cut failed payments by a third"


# The speech suite's fake model server, shared rather than copied.
fake = test_speech.fake


@pytest.fixture
def class_questions() -> str:
    return "Why us?"


@pytest.fixture
def class_running() -> bool:
    return True


def transcribe(user: Any, session: ClassSession, seconds: float = 2.5) -> Any:
    web = Client()
    web.force_login(user)
    wav = SimpleUploadedFile("answer.wav", make_wav(seconds), content_type="audio/wav")
    url = reverse("conversation-transcribe", args=[session.conversation_id])
    return web.post(url, {"audio": wav, "duration": "2.5"})


@pytest.mark.django_db
def test_a_learner_of_the_session_dictates_an_answer(
    fake: FakeOpenAIServer, minji: Any, session: ClassSession
) -> None:
    response = transcribe(minji, session)
    assert response.status_code == 200
    assert response.json() == {"text": DEFAULT_TRANSCRIPT, "duration_seconds": 2.5}
    assert len([r for r in fake.requests if r.path.endswith("/audio/transcriptions")]) == 1
    # Nothing is answered for them: the text only goes into their answer box.
    assert not ClassAnswer.objects.exists() and not Recording.objects.exists()


@pytest.mark.django_db
def test_someone_outside_the_session_cannot_dictate_into_it(
    fake: FakeOpenAIServer, make_user: Any, session: ClassSession
) -> None:
    stranger = make_user(nickname="Stranger")
    enrolled = make_user(nickname="Enrolled, not joined")
    session.klass.learners.add(enrolled)
    assert transcribe(stranger, session).status_code == 404
    assert transcribe(enrolled, session).status_code == 404
    assert fake.requests == []  # refused before the model server was asked


@pytest.mark.django_db
def test_the_learners_live_page_has_the_dictate_button_on_the_answer_box(
    fake: FakeOpenAIServer, minji: Any, session: ClassSession
) -> None:
    web = Client()
    web.force_login(minji)
    page = web.get(reverse("class-session", args=[session.pk])).content.decode()
    assert 'data-testid="dictate" data-box="answer-input" data-seconds="answer-seconds"' in page
    transcribe_url = reverse("conversation-transcribe", args=[session.conversation_id])
    assert f'data-transcribe-url="{transcribe_url}"' in page
    assert 'id="answer-seconds" name="speech_seconds"' in page


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_dictated_answer_gets_its_pace_analysed(
    settings: Any, minji: Any, session: ClassSession
) -> None:
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = ""
    page = await Page(minji, session).open()
    await page.send(action="answer", step=1, answer=ANSWER, speech_seconds="6.5")
    card = await page.until('data-testid="answer-saved"')
    assert 'data-testid="answer-pace"' in card and "120 words per minute" in card
    saved = await database_sync_to_async(ClassAnswer.objects.get)(user=minji)
    assert saved.analysis["words_per_minute"] == 120
    assert saved.analysis["speech"] == {"duration_seconds": 6.5}
    # A typed answer, or a duration the page made up, has no pace.
    await page.send(action="answer", step=1, answer=ANSWER, speech_seconds="99999")
    card = await page.until('data-testid="answer-saved"')
    assert "answer-pace" not in card
    saved = await database_sync_to_async(ClassAnswer.objects.get)(user=minji)
    assert saved.analysis.get("words_per_minute") is None and "speech" not in saved.analysis
    await page.close()
