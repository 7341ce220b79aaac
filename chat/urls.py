from django.urls import path

from chat import rooms_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("new/", views.new_conversation, name="new-conversation"),
    path("c/<uuid:conversation_id>/", views.conversation, name="conversation"),
    path("c/<uuid:conversation_id>/older/", views.older_messages, name="older-messages"),
    path("c/<uuid:conversation_id>/rename/", views.rename, name="conversation-rename"),
    path("c/<uuid:conversation_id>/delete/", views.delete, name="conversation-delete"),
    path("c/<uuid:conversation_id>/export.<str:fmt>", views.export, name="conversation-export"),
    path("rooms/", rooms_views.room_list, name="room-list"),
    path("rooms/new/", rooms_views.room_create, name="room-create"),
    path("rooms/join/<str:code>/", rooms_views.room_invite, name="room-invite"),
    path("rooms/<uuid:conversation_id>/", rooms_views.room, name="room"),
    path("rooms/<uuid:conversation_id>/join/", rooms_views.room_join, name="room-join"),
    path("rooms/<uuid:conversation_id>/leave/", rooms_views.room_leave, name="room-leave"),
    path("rooms/<uuid:conversation_id>/rename/", rooms_views.room_rename, name="room-rename"),
    path(
        "rooms/<uuid:conversation_id>/invite/",
        rooms_views.room_invite_regenerate,
        name="room-invite-regenerate",
    ),
    path(
        "rooms/<uuid:conversation_id>/members/<id:user_id>/remove/",
        rooms_views.room_remove_member,
        name="room-remove-member",
    ),
    path("rooms/<uuid:conversation_id>/delete/", rooms_views.room_delete, name="room-delete"),
]
