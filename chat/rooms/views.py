"""Live rooms: list, create, join, leave and the owner's tools (a room is a `room` conversation)."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.http import HtmxHttpRequest as HttpRequest
from chat import conversations
from chat.coach import quota
from chat.models import Conversation
from chat.rooms import limits, selectors
from chat.rooms import services as rooms
from chat.rooms.forms import RoomForm


def _room(request: HttpRequest, conversation_id: UUID) -> Conversation:
    """A room the person may look at; a private room they are not in is a 404, like no room."""
    room = conversations.conversation_for(request.user, conversation_id)
    if room is None or not room.is_room:
        raise Http404
    return room


def _owned_room(request: HttpRequest, conversation_id: UUID) -> Conversation:
    room = _room(request, conversation_id)
    if room.owner_id != request.user.pk:
        raise Http404
    return room


def _list_page(request: HttpRequest, form: RoomForm, status: int = 200) -> HttpResponse:
    page = Paginator(selectors.rooms_for(request.user), selectors.ROOMS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {"rooms": page.object_list, "page": page, "form": form}
    template = "chat/rooms/rooms.html"
    if request.htmx and request.htmx.target == "room-list":
        template += "#room-list"  # the list's own poll: just the list
    return render(request, template, context, status=status)


def _too_many_changes(request: HttpRequest, room: Conversation) -> HttpResponse:
    """The room page again (status 429), saying why nothing changed."""
    messages.error(request, _("Too many changes to your rooms in the last hour. Try again later."))
    response = room_page(request, room)
    response.status_code = 429
    return response


@login_required
@require_GET
def room_list(request: HttpRequest) -> HttpResponse:
    """Public rooms and the user's rooms, and the form to create one."""
    return _list_page(request, RoomForm())


@login_required
@require_GET
def rooms_unread(request: HttpRequest) -> HttpResponse:
    """The header's unread badge on its own (it polls: pages without a socket stay current)."""
    context = {"rooms_unread": selectors.unread_total(request.user)}
    return render(request, "chat/partials/rooms_unread.html", context)


@login_required
@require_POST
def room_create(request: HttpRequest) -> HttpResponse:
    """Create a room and open it."""
    form = RoomForm(request.POST)
    if not form.is_valid():
        return _list_page(request, form, status=400)
    if not limits.spend(request.user.pk, limits.CREATE):
        form.add_error(
            None,
            _("You have created too many rooms in the last hour. Try again later."),
        )
        return _list_page(request, form, status=429)
    room = rooms.room_create(
        owner=request.user,
        name=form.cleaned_data["name"],
        topic=form.cleaned_data["topic"],
        is_public=not form.cleaned_data["private"],
    )
    return redirect("room", conversation_id=room.pk)


@login_required
@require_GET
def room(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    """A room: live for members, a read-only preview with a Join button for others."""
    return room_page(request, _room(request, conversation_id))


def room_page(request: HttpRequest, room: Conversation) -> HttpResponse:
    """The room's page for this person (a room they may see)."""
    membership = selectors.membership_of(request.user, room)
    chat_messages = conversations.latest_messages(room)
    online = conversations.online_members(room)
    if membership is not None and request.user.pk not in {uid for uid, _name in online}:
        # This page's own socket is about to open: show the viewer online from the start.
        online = sorted(
            [*online, (request.user.pk, request.user.display_name)],
            key=lambda row: (row[1].lower(), row[0]),
        )
    is_owner = room.owner_id == request.user.pk
    context = {
        "conversation": room,
        "membership": membership,
        "is_member": membership is not None,
        "is_owner": is_owner,
        "chat_messages": chat_messages,
        # "Load older" is for members (the older view checks membership).
        "has_older": membership is not None and bool(chat_messages) and chat_messages[0].seq > 1,
        "online": online,
        "members": selectors.members_of(room) if membership is not None else [],
        "bans": selectors.bans_of(room) if is_owner else [],
        "invite_url": request.build_absolute_uri(reverse("room-invite", args=[room.invite_code]))
        if membership is not None and (is_owner or not room.is_public)
        else "",
        "form": RoomForm(initial={"name": room.title, "topic": room.topic}) if is_owner else None,
        **quota.context_of_request(request),
    }
    return render(request, "chat/rooms/room.html", context)


@login_required
@require_POST
def room_join(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    """Join a public room (private rooms are joined through their invite link)."""
    room = _room(request, conversation_id)
    try:
        rooms.room_join(user=request.user, room=room)
    except rooms.BannedFromRoomError:
        messages.error(request, _("The owner removed you from this room, so you cannot join it."))
        return redirect("room-list")
    return redirect("room", conversation_id=room.pk)


@login_required
@require_http_methods(["GET", "POST"])
def room_invite(request: HttpRequest, code: str) -> HttpResponse:
    """An invite link: shows the room and a Join button; joining opens it."""
    room = selectors.room_by_invite(code)
    if room is None:
        raise Http404
    if request.method == "POST":
        try:
            rooms.room_join(user=request.user, room=room)
        except rooms.BannedFromRoomError:
            messages.error(
                request, _("The owner removed you from this room, so you cannot join it.")
            )
            return redirect("room-list")
        return redirect("room", conversation_id=room.pk)
    if conversations.is_member(request.user, room):
        return redirect("room", conversation_id=room.pk)
    return render(
        request,
        "chat/rooms/room_invite.html",
        {"conversation": room, "member_count": conversations.member_count(room)},
    )


@login_required
@require_POST
def room_leave(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    """Leave a room; its open pages close."""
    room = _room(request, conversation_id)
    try:
        left = rooms.room_leave(user=request.user, room=room)
    except rooms.OwnerCannotLeaveError:
        messages.error(request, _("You own this room: delete it instead of leaving."))
        return redirect("room", conversation_id=room.pk)
    if left:
        messages.info(request, _("You left “%(name)s”.") % {"name": room.title})
    return redirect("room-list")


@login_required
@require_POST
def room_rename(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    """The owner renames the room or changes its topic."""
    room = _owned_room(request, conversation_id)
    form = RoomForm(request.POST)
    if not limits.spend(request.user.pk, limits.CHANGE):
        return _too_many_changes(request, room)
    if form.is_valid():
        rooms.room_rename(
            room=room, name=form.cleaned_data["name"], topic=form.cleaned_data["topic"]
        )
    else:
        messages.error(request, _("Give the room a name."))
    return redirect("room", conversation_id=room.pk)


@login_required
@require_POST
def room_invite_regenerate(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    """The owner replaces the invite link; the old one stops working."""
    room = _owned_room(request, conversation_id)
    if not limits.spend(request.user.pk, limits.CHANGE):
        return _too_many_changes(request, room)
    rooms.room_regenerate_invite(room=room)
    messages.info(request, _("A new invite link was made; the old one no longer works."))
    return redirect("room", conversation_id=room.pk)


@login_required
@require_POST
def room_remove_member(request: HttpRequest, conversation_id: UUID, user_id: int) -> HttpResponse:
    """The owner removes a member; their open pages close."""
    room = _owned_room(request, conversation_id)
    rooms.room_remove_member(room=room, user_id=user_id)
    return redirect("room", conversation_id=room.pk)


@login_required
@require_POST
def room_lift_ban(request: HttpRequest, conversation_id: UUID, user_id: int) -> HttpResponse:
    """The owner lets someone they removed join again."""
    room = _owned_room(request, conversation_id)
    rooms.room_lift_ban(room=room, user_id=user_id)
    return redirect("room", conversation_id=room.pk)


@login_required
@require_http_methods(["GET", "POST"])
def room_delete(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    """The owner deletes the room, after confirmation."""
    room = _owned_room(request, conversation_id)
    if request.method == "POST":
        rooms.room_delete(room=room)
        messages.info(request, _("The room “%(name)s” was deleted.") % {"name": room.title})
        return redirect("room-list")
    return render(request, "chat/rooms/room_delete.html", {"conversation": room})
