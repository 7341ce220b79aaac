from django.urls import path

from chat.rooms import views

urlpatterns = [
    path("rooms/", views.room_list, name="room-list"),
    path("rooms/new/", views.room_create, name="room-create"),
    path("rooms/unread/", views.rooms_unread, name="rooms-unread"),
    path("rooms/join/<str:code>/", views.room_invite, name="room-invite"),
    path("rooms/<uuid:conversation_id>/", views.room, name="room"),
    path("rooms/<uuid:conversation_id>/join/", views.room_join, name="room-join"),
    path("rooms/<uuid:conversation_id>/leave/", views.room_leave, name="room-leave"),
    path("rooms/<uuid:conversation_id>/rename/", views.room_rename, name="room-rename"),
    path(
        "rooms/<uuid:conversation_id>/invite/",
        views.room_invite_regenerate,
        name="room-invite-regenerate",
    ),
    path(
        "rooms/<uuid:conversation_id>/members/<id:user_id>/remove/",
        views.room_remove_member,
        name="room-remove-member",
    ),
    path(
        "rooms/<uuid:conversation_id>/bans/<id:user_id>/lift/",
        views.room_lift_ban,
        name="room-lift-ban",
    ),
    path("rooms/<uuid:conversation_id>/delete/", views.room_delete, name="room-delete"),
]
