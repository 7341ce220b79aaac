"""Every page of the chat app: each subject keeps its own URL conf."""

from django.urls import include, path

urlpatterns = [
    path("", include("chat.practice.urls")),
    path("", include("chat.rooms.urls")),
    path("", include("chat.voice.urls")),
    path("", include("chat.classes.urls")),
]
