"""Speech endpoints of a conversation: a coach message read aloud, a dictated answer
transcribed. Both only for the conversation's owner or members, and only with a model server.
"""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils import translation
from django.views.decorators.http import require_GET, require_POST

from accounts.http import HtmxHttpRequest
from chat import conversations
from chat.coach import speech
from chat.models import Conversation, Message
from chat.voice.ranges import ranged_file_response


def _member_conversation(request: HtmxHttpRequest, conversation_id: uuid.UUID) -> Conversation:
    """The conversation if the person is its owner or a member, else 404 (existence hidden)."""
    try:
        conversation = conversations.conversation_for(
            request.user, conversation_id, require_member=True
        )
    except conversations.NotAMemberError:
        conversation = None
    if conversation is None or not speech.server_configured():
        raise Http404
    return conversation


@login_required
@require_GET
def message_speech(
    request: HtmxHttpRequest, message_id: uuid.UUID
) -> HttpResponse | FileResponse | StreamingHttpResponse:
    """The coach message as audio (synthesised on first play, then served from storage)."""
    message = Message.objects.filter(pk=message_id).first()
    if message is None:
        raise Http404
    _member_conversation(request, message.conversation_id)
    try:
        audio = speech.speech_for(message)
    except speech.SpeechError as exc:
        return HttpResponse(
            exc.message, status=exc.status, content_type="text/plain; charset=utf-8"
        )
    return ranged_file_response(request, audio.audio, audio.content_type)


@login_required
@require_POST
def transcribe(request: HtmxHttpRequest, conversation_id: uuid.UUID) -> JsonResponse:
    """A recorded answer as text, for the learner to check and send (nothing is sent here)."""
    conversation = _member_conversation(request, conversation_id)
    try:
        result = speech.transcribe(
            user=request.user,
            conversation=conversation,
            upload=request.FILES.get("audio"),
            declared_seconds=request.POST.get("duration"),
            language=(translation.get_language() or "").split("-")[0],
        )
    except speech.SpeechError as exc:
        return JsonResponse({"error": exc.message}, status=exc.status)
    return JsonResponse({"text": result.text, "duration_seconds": result.duration_seconds})
