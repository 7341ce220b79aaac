"""Read aloud and dictation through the real openai SDK against the fake model server:
audio cached once per message and served with Range, transcripts, limits and errors."""

from __future__ import annotations

import io
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from chat.coach import sending
from chat.coach.speech import speakable
from chat.models import Message, Recording, SpeechAudio
from chat.practice import services as practice
from tests.fakes.fake_openai import DEFAULT_TRANSCRIPT, FakeOpenAIServer, Script, speech_bytes

pytestmark = pytest.mark.django_db


def make_wav(seconds: float, rate: int = 16000) -> bytes:
    """A mono 16-bit WAV of silence `seconds` long."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\x00\x00" * int(seconds * rate))
    return out.getvalue()


@pytest.fixture
def fake(fake_openai: FakeOpenAIServer, settings: Any, tmp_path: Path) -> FakeOpenAIServer:
    settings.OPENAI_BASE_URL = fake_openai.base_url
    settings.OPENAI_API_KEY = "sk-test"
    settings.AI_MAX_RETRIES = 0
    settings.MEDIA_ROOT = tmp_path / "media"
    fake_openai.script = Script()
    fake_openai.clear()
    return fake_openai


@pytest.fixture
def learner(make_user: Callable[..., Any]) -> Any:
    return make_user(nickname="Mina")


@pytest.fixture
def opening(learner: Any, persona: Any) -> Message:
    """The coach's opening message of a new practice conversation."""
    conversation = practice.practice_start(user=learner, persona=persona)
    return conversation.messages.get()


@pytest.fixture
def web(learner: Any) -> Client:
    client = Client()
    client.force_login(learner)
    return client


def speech_calls(fake: FakeOpenAIServer) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/audio/speech")]


def test_coach_message_is_synthesised_once_then_served_from_storage(
    fake: FakeOpenAIServer, web: Client, opening: Message
) -> None:
    url = reverse("message-speech", args=[opening.pk])
    first = web.get(url)
    second = web.get(url)
    expected = speech_bytes(speakable(opening.content))
    assert first.status_code == second.status_code == 200
    assert first["Content-Type"] == "audio/mpeg"
    assert first["Accept-Ranges"] == "bytes"
    assert b"".join(first.streaming_content) == expected
    assert b"".join(second.streaming_content) == expected
    calls = speech_calls(fake)
    assert len(calls) == 1
    # Heard as text: the Markdown marks of the message are not read out.
    assert calls[0].body["input"] == speakable(opening.content)
    assert "**" in opening.content and "**" not in calls[0].body["input"]
    assert calls[0].body["voice"] == "alloy"
    assert SpeechAudio.objects.filter(message=opening).count() == 1


def test_range_request_gets_206_with_exactly_those_bytes(
    fake: FakeOpenAIServer, web: Client, opening: Message
) -> None:
    url = reverse("message-speech", args=[opening.pk])
    audio = speech_bytes(speakable(opening.content))
    size = len(audio)
    part = web.get(url, HTTP_RANGE="bytes=10-29")
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 10-29/{size}"
    assert part["Content-Length"] == "20"
    assert b"".join(part.streaming_content) == audio[10:30]
    tail = web.get(url, HTTP_RANGE="bytes=-16")
    assert tail.status_code == 206
    assert b"".join(tail.streaming_content) == audio[-16:]
    rest = web.get(url, HTTP_RANGE=f"bytes={size - 5}-")
    assert rest["Content-Range"] == f"bytes {size - 5}-{size - 1}/{size}"
    assert b"".join(rest.streaming_content) == audio[-5:]


def test_range_past_the_end_is_416_and_several_ranges_get_the_whole_file(
    fake: FakeOpenAIServer, web: Client, opening: Message
) -> None:
    url = reverse("message-speech", args=[opening.pk])
    size = len(speech_bytes(speakable(opening.content)))
    past = web.get(url, HTTP_RANGE=f"bytes={size}-")
    assert past.status_code == 416
    assert past["Content-Range"] == f"bytes */{size}"
    several = web.get(url, HTTP_RANGE="bytes=0-1,5-9")
    assert several.status_code == 200
    assert len(b"".join(several.streaming_content)) == size


def test_someone_else_cannot_hear_a_practice_message(
    fake: FakeOpenAIServer, opening: Message, make_user: Callable[..., Any]
) -> None:
    stranger = Client()
    stranger.force_login(make_user())
    assert stranger.get(reverse("message-speech", args=[opening.pk])).status_code == 404
    assert speech_calls(fake) == []


def test_only_room_members_hear_the_coach_in_a_room(
    fake: FakeOpenAIServer, room: Any, guest: Any, make_user: Callable[..., Any]
) -> None:
    from chat.conversations import message_create

    reply = message_create(
        conversation=room, author=None, role=Message.Role.ASSISTANT, content="Hello, room!"
    )
    member = Client()
    member.force_login(guest)
    outsider = Client()
    outsider.force_login(make_user())
    url = reverse("message-speech", args=[reply.pk])
    assert outsider.get(url).status_code == 404
    assert member.get(url).status_code == 200


def test_learner_messages_are_not_read_by_the_server(
    fake: FakeOpenAIServer, web: Client, opening: Message, learner: Any
) -> None:
    from chat.conversations import message_create

    mine = message_create(conversation=opening.conversation, author=learner, content="Hi")
    assert web.get(reverse("message-speech", args=[mine.pk])).status_code == 404
    assert speech_calls(fake) == []


def test_without_a_model_server_there_is_no_speech_endpoint(
    settings: Any, web: Client, opening: Message
) -> None:
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    assert web.get(reverse("message-speech", args=[opening.pk])).status_code == 404


def test_speech_server_failure_is_a_clear_502_and_nothing_is_stored(
    fake: FakeOpenAIServer, web: Client, opening: Message
) -> None:
    fake.script = Script(status=500)
    response = web.get(reverse("message-speech", args=[opening.pk]))
    assert response.status_code == 502
    assert "not answering" in response.content.decode()
    assert not SpeechAudio.objects.exists()


def test_audio_files_leave_with_the_conversation(
    fake: FakeOpenAIServer,
    web: Client,
    opening: Message,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    assert web.get(reverse("message-speech", args=[opening.pk])).status_code == 200
    stored = Path(settings.MEDIA_ROOT) / SpeechAudio.objects.get().audio.name
    assert stored.exists()
    with django_capture_on_commit_callbacks(execute=True):
        opening.conversation.delete()
    assert not SpeechAudio.objects.exists()
    assert not stored.exists()


# --- dictation --------------------------------------------------------------------------------


def transcribe(web: Client, conversation: Any, upload: Any, **extra: Any) -> Any:
    url = reverse("conversation-transcribe", args=[conversation.pk])
    return web.post(url, {"audio": upload, **extra})


def test_a_recorded_answer_comes_back_as_text_with_its_duration(
    fake: FakeOpenAIServer, web: Client, opening: Message
) -> None:
    wav = SimpleUploadedFile("answer.wav", make_wav(2.5), content_type="audio/wav")
    response = transcribe(web, opening.conversation, wav, duration="99")
    assert response.status_code == 200
    # The WAV's own header beats what the page measured.
    assert response.json() == {"text": DEFAULT_TRANSCRIPT, "duration_seconds": 2.5}
    (call,) = [r for r in fake.requests if r.path.endswith("/audio/transcriptions")]
    assert call.body["fields"]["model"] == "whisper-1"
    assert call.body["files"]["file"]["filename"] == "answer.wav"
    # Nothing reaches the conversation: the learner still has to press Send.
    assert opening.conversation.messages.count() == 1
    assert not Recording.objects.exists()


def test_webm_duration_comes_from_the_page_within_bounds(
    fake: FakeOpenAIServer, web: Client, opening: Message
) -> None:
    webm = SimpleUploadedFile("a.webm", b"\x1aE\xdf\xa3" + b"0" * 400, "audio/webm;codecs=opus")
    response = transcribe(web, opening.conversation, webm, duration="12.345")
    assert response.json()["duration_seconds"] == 12.35
    webm.seek(0)
    assert (
        transcribe(web, opening.conversation, webm, duration="-3").json()["duration_seconds"]
        is None
    )


def test_unsupported_format_is_refused_before_the_model_is_asked(
    fake: FakeOpenAIServer, web: Client, opening: Message
) -> None:
    text = SimpleUploadedFile("notes.txt", b"hello", content_type="text/plain")
    response = transcribe(web, opening.conversation, text)
    assert response.status_code == 415
    assert "format is not supported" in response.json()["error"]
    assert not [r for r in fake.requests if "audio" in r.path]


def test_oversize_recording_is_refused_here(
    fake: FakeOpenAIServer, web: Client, opening: Message, settings: Any
) -> None:
    settings.DICTATION_MAX_BYTES = 1000
    wav = SimpleUploadedFile("answer.wav", make_wav(1.0), content_type="audio/wav")
    response = transcribe(web, opening.conversation, wav)
    assert response.status_code == 413
    assert "too large" in response.json()["error"]
    assert not [r for r in fake.requests if "audio" in r.path]


def test_too_long_recording_is_refused(
    fake: FakeOpenAIServer, web: Client, opening: Message, settings: Any
) -> None:
    settings.DICTATION_MAX_SECONDS = 2
    wav = SimpleUploadedFile("answer.wav", make_wav(3.0), content_type="audio/wav")
    response = transcribe(web, opening.conversation, wav)
    assert response.status_code == 413
    assert "too long" in response.json()["error"]


def test_model_server_refusing_an_oversize_file_is_explained(
    fake: FakeOpenAIServer, web: Client, opening: Message
) -> None:
    fake.script = Script(max_upload_bytes=100)
    wav = SimpleUploadedFile("answer.wav", make_wav(0.5), content_type="audio/wav")
    response = transcribe(web, opening.conversation, wav)
    assert response.status_code == 422
    assert "could not use that audio" in response.json()["error"]


def test_transcription_server_error_is_a_502(
    fake: FakeOpenAIServer, web: Client, opening: Message
) -> None:
    fake.script = Script(status=503)
    wav = SimpleUploadedFile("answer.wav", make_wav(0.5), content_type="audio/wav")
    response = transcribe(web, opening.conversation, wav)
    assert response.status_code == 502
    assert response.json()["error"]


def test_recording_is_kept_only_for_a_learner_who_opted_in(
    fake: FakeOpenAIServer, web: Client, opening: Message, learner: Any, settings: Any
) -> None:
    learner.keep_recordings = True
    learner.save(update_fields=["keep_recordings"])
    wav = SimpleUploadedFile("answer.wav", make_wav(1.0), content_type="audio/wav")
    assert transcribe(web, opening.conversation, wav).status_code == 200
    kept = Recording.objects.get()
    assert kept.user == learner
    assert kept.transcript == DEFAULT_TRANSCRIPT
    assert kept.duration_seconds == 1.0
    assert (Path(settings.MEDIA_ROOT) / kept.audio.name).exists()


def test_someone_else_cannot_transcribe_into_my_conversation(
    fake: FakeOpenAIServer, opening: Message, make_user: Callable[..., Any]
) -> None:
    stranger = Client()
    stranger.force_login(make_user())
    wav = SimpleUploadedFile("answer.wav", make_wav(0.5), content_type="audio/wav")
    assert transcribe(stranger, opening.conversation, wav).status_code == 404


# --- the speaking time on the sent answer -----------------------------------------------------


def test_sent_answer_keeps_its_speaking_time(settings: Any, learner: Any, opening: Message) -> None:
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    text = "I led the billing migration and we cut failed payments by a third"
    seconds = sending.clean_speech_seconds("6.5")
    outcome = sending.send_message(learner, opening.conversation, text, seconds)
    assert outcome.exchange is not None and outcome.exchange.user_message is not None
    stored = Message.objects.get(pk=outcome.exchange.user_message.pk)
    assert stored.metadata["speech"] == {"duration_seconds": 6.5}
    words_per_minute = len(stored.content.split()) / (6.5 / 60)
    assert round(words_per_minute) == 120


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4.25", 4.25),
        (3, 3.0),
        ("0", None),
        (-1, None),
        ("nan", None),
        ("inf", None),
        ("lots", None),
        (True, None),
        (None, None),
        ("", None),
        ("100000", None),
    ],
)
def test_speaking_time_from_the_page_is_validated(value: object, expected: float | None) -> None:
    assert sending.clean_speech_seconds(value) == expected


# --- the pieces on their own ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", None),
        ("bytes=0-", (0, 99)),
        ("bytes=0-0", (0, 0)),
        ("bytes=90-200", (90, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=100-", False),
        ("bytes=5-4", False),
        ("bytes=-0", False),
        ("bytes=0-1,4-5", None),
        ("items=0-5", None),
        ("bytes=abc", None),
    ],
)
def test_range_header_parsing(header: str, expected: object) -> None:
    from chat.voice.ranges import parse_range

    assert parse_range(header, 100) == expected


def test_fake_server_refuses_a_file_that_is_not_audio(fake: FakeOpenAIServer) -> None:
    import openai

    from chat.coach import speech

    with pytest.raises(openai.BadRequestError, match="Invalid file format"):
        speech.client().audio.transcriptions.create(
            model="whisper-1", file=("notes.txt", b"hello", "text/plain")
        )
