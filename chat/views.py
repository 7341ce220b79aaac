"""Pages: home, choosing a coach, a practice conversation and its history tools."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat import exports, quota, selectors, services
from chat.forms import RenameForm
from chat.models import Conversation, Persona


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Signed out: what Practalk is. Signed in: your conversations."""
    if not request.user.is_authenticated:
        return render(request, "chat/landing.html")
    query = request.GET.get("q", "")
    conversations = selectors.practice_conversations(request.user, query)[:100]
    context = {"conversations": conversations, "q": query}
    template = "chat/home.html"
    if request.htmx and request.htmx.target == "conversation-list":
        # Search as you type: render just the list.
        template += "#conversation-list"
    return render(request, template, context)


@login_required
@require_http_methods(["GET", "POST"])
def new_conversation(request: HttpRequest) -> HttpResponse:
    """Choose a coach; starting creates the conversation and opens it."""
    if request.method == "POST":
        persona = get_object_or_404(Persona, pk=request.POST.get("persona"), is_active=True)
        conversation = services.practice_start(user=request.user, persona=persona)
        return redirect("conversation", conversation_id=conversation.pk)
    return render(request, "chat/new.html", {"personas": selectors.active_personas()})


def _own_practice(request: HttpRequest, conversation_id: object) -> Conversation:
    conversation = selectors.conversation_for(request.user, conversation_id)
    if conversation is None:
        raise Http404
    return conversation


def quota_context(user) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Remaining replies today, for the quota badge."""
    return {
        "remaining": quota.remaining(user),
        "limit": quota.daily_limit(user),
        "reset_at": quota.reset_at(),
    }


@login_required
@require_GET
def conversation(request: HttpRequest, conversation_id: object) -> HttpResponse:
    """A conversation page; its socket streams the coach's replies."""
    conv = _own_practice(request, conversation_id)
    if conv.is_room:
        return redirect("room", conversation_id=conv.pk)
    services.recover_interrupted(conversation_id=conv.pk)  # orphaned by a dead process
    messages = selectors.latest_messages(conv.pk)
    context = {
        "conversation": conv,
        "chat_messages": messages,
        "has_older": bool(messages) and messages[0].seq > 1,
        "coach_name": conv.persona.name if conv.persona else "",
        **quota_context(request.user),
    }
    return render(request, "chat/conversation.html", context)


@login_required
@require_GET
def older_messages(request: HttpRequest, conversation_id: object) -> HttpResponse:
    """The page of messages before `before` (htmx "load older")."""
    conv = _own_practice(request, conversation_id)
    if conv.is_room and not selectors.is_member(request.user, conv):
        raise Http404
    try:
        before = int(request.GET.get("before", ""))
    except ValueError as exc:
        raise Http404 from exc
    messages = selectors.latest_messages(conv.pk, before_seq=before)
    return render(
        request,
        "chat/partials/older.html",
        {
            "conversation": conv,
            "chat_messages": messages,
            "has_older": bool(messages) and messages[0].seq > 1,
            "coach_name": conv.persona.name if conv.persona else "",
        },
    )


@login_required
@require_POST
def rename(request: HttpRequest, conversation_id: object) -> HttpResponse:
    """Rename a practice conversation."""
    conv = _own_practice(request, conversation_id)
    if conv.is_room:
        raise Http404
    form = RenameForm(request.POST, instance=conv)
    if form.is_valid():
        # Only the title: a full save would write back a stale last_seq if a reply was stored
        # meanwhile, and the next message would then reuse a sequence number.
        form.instance.save(update_fields=["title"])
    if request.htmx:
        return render(request, "chat/conversation.html#title", {"conversation": conv, "form": form})
    return redirect("conversation", conversation_id=conv.pk)


@login_required
@require_http_methods(["GET", "POST"])
def delete(request: HttpRequest, conversation_id: object) -> HttpResponse:
    """Delete a practice conversation, after confirmation."""
    conv = _own_practice(request, conversation_id)
    if conv.is_room:
        raise Http404
    if request.method == "POST":
        with transaction.atomic():
            # A reply still being written would keep the model talking for nothing: stop it.
            services.publish_on_commit(
                services.ctl_group(conv.pk), {"type": "reply.stop", "message_id": None}
            )
            conv.delete()
        return redirect("home")
    return render(request, "chat/confirm_delete.html", {"conversation": conv})


@login_required
@require_GET
def export(request: HttpRequest, conversation_id: object, fmt: str) -> HttpResponse:
    """Download a conversation as Markdown or JSON."""
    conv = _own_practice(request, conversation_id)
    if conv.is_room and not selectors.is_member(request.user, conv):
        raise Http404
    messages = list(selectors.messages_qs(conv.pk))
    name = slugify(conv.title)[:60] or "conversation"
    if fmt == "md":
        body, ctype = exports.as_markdown(conv, messages), "text/markdown; charset=utf-8"
    elif fmt == "json":
        body, ctype = exports.as_json(conv, messages), "application/json"
    else:
        raise Http404
    response = HttpResponse(body, content_type=ctype)
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response
