from django.urls import path

from chat.practice import views

urlpatterns = [
    path("", views.home, name="home"),
    path("new/", views.new_conversation, name="new-conversation"),
    path("c/<uuid:conversation_id>/", views.conversation, name="conversation"),
    path("c/<uuid:conversation_id>/older/", views.older_messages, name="older-messages"),
    path("c/<uuid:conversation_id>/rename/", views.rename, name="conversation-rename"),
    path("c/<uuid:conversation_id>/delete/", views.delete, name="conversation-delete"),
    path("c/<uuid:conversation_id>/export.<str:fmt>", views.export, name="conversation-export"),
    path("c/<uuid:conversation_id>/finish/", views.finish, name="conversation-finish"),
    path("c/<uuid:conversation_id>/report/", views.report, name="conversation-report"),
    path("progress/", views.progress_page, name="progress"),
    path(
        "c/<uuid:conversation_id>/m/<uuid:message_id>/show/",
        views.show_version,
        name="answer-show",
    ),
    path(
        "c/<uuid:conversation_id>/m/<uuid:message_id>/compare/",
        views.compare,
        name="answer-compare",
    ),
]
