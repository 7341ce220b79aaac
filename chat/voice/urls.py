"""Speech URLs: read aloud and dictation."""

from django.urls import path

from chat.voice import views

urlpatterns = [
    path("speech/<uuid:message_id>/", views.message_speech, name="message-speech"),
    path("c/<uuid:conversation_id>/transcribe/", views.transcribe, name="conversation-transcribe"),
]
