"""Speech through the model server: coach messages read aloud (cached once per message) and
dictated answers transcribed. Without a model server the browser's own speech is used and
nothing here is called.
"""

from __future__ import annotations

import functools
import io
import logging
import re
import wave
from dataclasses import dataclass
from html import unescape
from typing import Any

import openai
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils.html import strip_tags
from django.utils.translation import gettext as _

from accounts.models import User
from chat.coach.contract import ProviderConfig
from chat.coach.providers import config_from_settings
from chat.coach.sending import clean_speech_seconds
from chat.models import Conversation, Message, Recording, SpeechAudio
from chat.rendering import render_markdown

logger = logging.getLogger(__name__)

# What the transcription endpoint accepts (OpenAI's list), by MIME type without parameters.
AUDIO_TYPES: dict[str, str] = {
    "audio/webm": ".webm",
    "video/webm": ".webm",
    "audio/ogg": ".ogg",
    "audio/mp4": ".m4a",
    "audio/x-m4a": ".m4a",
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/flac": ".flac",
}
# The speech endpoint's formats, with the type and extension they are stored under.
SPEECH_FORMATS: dict[str, tuple[str, str]] = {
    "mp3": ("audio/mpeg", ".mp3"),
    "opus": ("audio/ogg", ".ogg"),
    "aac": ("audio/aac", ".aac"),
    "flac": ("audio/flac", ".flac"),
    "wav": ("audio/wav", ".wav"),
}
# The speech endpoint's input limit, in characters.
SPEECH_MAX_CHARS = 4096


class SpeechError(Exception):
    """Speech could not be made or read; ``message`` is safe to show, ``status`` is HTTP."""

    def __init__(self, message: str, *, status: int = 502, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail


def server_configured() -> bool:
    """Whether a model server is configured (its speech endpoints are then used)."""
    return config_from_settings().uses_openai


@functools.lru_cache(maxsize=4)
def _client(config: ProviderConfig) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=config.api_key or "not-needed",
        base_url=config.base_url or None,
        timeout=openai.Timeout(config.timeout_seconds, connect=min(5.0, config.timeout_seconds)),
        max_retries=config.max_retries,
    )


def client() -> openai.OpenAI:
    """The synchronous SDK client for the configured server (speech runs in plain views)."""
    return _client(config_from_settings())


def _server_error(exc: openai.OpenAIError) -> SpeechError:
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, openai.APIStatusError) and exc.status_code in (400, 413, 415, 422):
        return SpeechError(
            _("The speech service could not use that audio."), status=422, detail=detail
        )
    return SpeechError(
        _("The speech service is not answering. Try again in a moment."), status=502, detail=detail
    )


# --- read aloud -------------------------------------------------------------------------------


def readable(message: Message) -> bool:
    """Only the coach's finished text messages are read aloud."""
    return (
        message.role == Message.Role.ASSISTANT
        and message.kind == Message.Kind.TEXT
        and message.status == Message.Status.COMPLETE
        and bool(message.content.strip())
    )


def speakable(markdown: str) -> str:
    """What a listener should hear: the rendered message's text, without Markdown marks."""
    html = str(render_markdown(markdown))
    text = strip_tags(re.sub(r"</(p|li|h\d|pre|blockquote)>", ". ", html))
    text = unescape(re.sub(r"\s+", " ", text)).strip()
    return re.sub(r"([.!?:])\s*\.\s", r"\1 ", text).strip(" .") or markdown.strip()


def speech_for(message: Message) -> SpeechAudio:
    """The message's audio: synthesised by the model server the first time, then stored."""
    existing = SpeechAudio.objects.filter(message=message).first()
    if existing is not None:
        return existing
    if not readable(message):
        raise SpeechError(_("Only the coach's finished messages can be read aloud."), status=404)
    model, voice = settings.SPEECH_MODEL, settings.SPEECH_VOICE
    audio_format = settings.SPEECH_FORMAT if settings.SPEECH_FORMAT in SPEECH_FORMATS else "mp3"
    try:
        response = client().audio.speech.create(
            model=model,
            voice=voice,
            input=speakable(message.content)[:SPEECH_MAX_CHARS],
            response_format=audio_format,  # type: ignore[arg-type]
        )
        audio = response.content
    except openai.OpenAIError as exc:
        error = _server_error(exc)
        logger.warning("speech for %s failed: %s", message.pk, error.detail)
        raise error from exc
    if not audio:
        raise SpeechError(_("The speech service sent no audio."), status=502)
    return _store_speech(message, audio, audio_format=audio_format, model=model, voice=voice)


def _store_speech(
    message: Message, audio: bytes, *, audio_format: str, model: str, voice: str
) -> SpeechAudio:
    content_type, suffix = SPEECH_FORMATS[audio_format]
    row = SpeechAudio(message=message, content_type=content_type, model=model, voice=voice)
    row.audio.save(f"{message.pk}{suffix}", ContentFile(audio), save=False)
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        # Two listeners asked at once: keep the first one's file, drop ours.
        if row.audio.name:
            row.audio.storage.delete(row.audio.name)
        return SpeechAudio.objects.get(message=message)
    return row


# --- dictation --------------------------------------------------------------------------------


@dataclass
class Transcript:
    """What the learner said, and how long they spoke."""

    text: str
    duration_seconds: float | None


def base_type(content_type: str) -> str:
    """``audio/webm;codecs=opus`` → ``audio/webm``."""
    return content_type.split(";", 1)[0].strip().lower()


def wav_seconds(data: bytes) -> float | None:
    """A WAV file's length from its header, or None when it is not a readable WAV."""
    try:
        with wave.open(io.BytesIO(data)) as wav:
            rate = wav.getframerate()
            return wav.getnframes() / rate if rate else None
    except (wave.Error, EOFError):
        return None


def check_upload(
    upload: UploadedFile[Any] | None, declared_seconds: object
) -> tuple[bytes, str, float | None]:
    """The recording's bytes, type and duration, or SpeechError with what to tell the learner."""
    if upload is None:
        raise SpeechError(_("No recording arrived. Try recording again."), status=400)
    limit = settings.DICTATION_MAX_BYTES
    if (upload.size or 0) > limit:
        raise SpeechError(
            _("That recording is too large (at most %(mb).1f MB). Record a shorter answer.")
            % {"mb": limit / (1024 * 1024)},
            status=413,
        )
    content_type = base_type(upload.content_type or "")
    if content_type not in AUDIO_TYPES:
        raise SpeechError(
            _("That audio format is not supported. Use WebM, Ogg, MP4, MP3, WAV or FLAC."),
            status=415,
        )
    data = upload.read(limit + 1)
    if not data:
        raise SpeechError(_("The recording was empty. Try recording again."), status=400)
    if len(data) > limit:
        raise SpeechError(_("That recording is too large. Record a shorter answer."), status=413)
    seconds = wav_seconds(data) if AUDIO_TYPES[content_type] == ".wav" else None
    if seconds is None:
        seconds = clean_speech_seconds(declared_seconds)
    if seconds is not None and seconds > settings.DICTATION_MAX_SECONDS:
        raise SpeechError(
            _("That recording is too long (at most %(n)d seconds).")
            % {"n": settings.DICTATION_MAX_SECONDS},
            status=413,
        )
    return data, content_type, seconds


def transcribe(
    *,
    user: User,
    conversation: Conversation,
    upload: UploadedFile[Any] | None,
    declared_seconds: object = None,
    language: str = "",
) -> Transcript:
    """Transcribe a dictated answer; its audio is kept only for a learner who opted in."""
    data, content_type, seconds = check_upload(upload, declared_seconds)
    name = "answer" + AUDIO_TYPES[content_type]
    try:
        result = client().audio.transcriptions.create(
            model=settings.TRANSCRIBE_MODEL,
            file=(name, data, content_type),
            language=language or openai.omit,
        )
    except openai.OpenAIError as exc:
        error = _server_error(exc)
        logger.warning("transcription failed: %s", error.detail)
        raise error from exc
    text = (result.text or "").strip()
    if user.keep_recordings:
        Recording.objects.create(
            conversation=conversation,
            user=user,
            audio=ContentFile(data, name=name),
            content_type=content_type,
            duration_seconds=seconds,
            transcript=text,
        )
    return Transcript(text=text, duration_seconds=seconds)
