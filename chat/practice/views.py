"""Pages: home, choosing a coach, a practice conversation and its history tools."""

from __future__ import annotations

from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.http import HtmxHttpRequest, HtmxRequest
from chat import cards, conversations
from chat.coach import quota
from chat.models import Conversation, Message, Persona
from chat.practice import exports, progress, selectors, services
from chat.practice.forms import RenameForm


@require_GET
def home(request: HtmxRequest) -> HttpResponse:
    """Signed out: what Practalk is. Signed in: your conversations."""
    if not request.user.is_authenticated:
        return render(request, "chat/landing.html")
    query = request.GET.get("q", "")
    days = selectors.practice_history(request.user, query)
    context = {"days": days, "q": query}
    template = "chat/practice/home.html"
    if request.htmx and request.htmx.target == "conversation-list":
        # Search as you type: render just the list.
        template += "#conversation-list"
    return render(request, template, context)


@login_required
@require_http_methods(["GET", "POST"])
def new_conversation(request: HtmxHttpRequest) -> HttpResponse:
    """Choose a coach; starting creates the conversation and opens it."""
    if request.method == "POST":
        persona = get_object_or_404(Persona, pk=request.POST.get("persona"), is_active=True)
        conversation = services.practice_start(user=request.user, persona=persona)
        return redirect("conversation", conversation_id=conversation.pk)
    return render(request, "chat/practice/new.html", {"personas": selectors.active_personas()})


def _own_practice(request: HtmxHttpRequest, conversation_id: UUID) -> Conversation:
    """The learner's own practice conversation; anything else is a 404 (rooms included)."""
    conversation = conversations.conversation_for(request.user, conversation_id)
    if conversation is None or conversation.is_room:
        raise Http404
    return conversation


@login_required
@require_GET
def conversation(request: HtmxHttpRequest, conversation_id: UUID) -> HttpResponse:
    """A conversation page; its socket streams the coach's replies."""
    found = conversations.conversation_for(request.user, conversation_id)
    if found is None:
        raise Http404
    if found.is_room:
        return redirect("room", conversation_id=found.pk)
    chat_messages = conversations.latest_messages(found)
    context = {
        "conversation": found,
        "chat_messages": chat_messages,
        "has_older": bool(chat_messages) and chat_messages[0].seq > 1,
        **quota.context_of_request(request),
    }
    return render(request, "chat/practice/conversation.html", context)


@login_required
@require_GET
def older_messages(request: HtmxHttpRequest, conversation_id: UUID) -> HttpResponse:
    """The page of messages before `before` (htmx "load older"), for practice and rooms."""
    try:
        found = conversations.conversation_for(request.user, conversation_id, require_member=True)
    except conversations.NotAMemberError as exc:
        raise Http404 from exc
    if found is None:
        raise Http404
    try:
        before = int(request.GET.get("before", ""))
    except ValueError as exc:
        raise Http404 from exc
    chat_messages = conversations.latest_messages(found, before_seq=before)
    return render(
        request,
        "chat/partials/older.html",
        {
            "conversation": found,
            "chat_messages": chat_messages,
            "has_older": bool(chat_messages) and chat_messages[0].seq > 1,
        },
    )


@login_required
@require_POST
def rename(request: HtmxHttpRequest, conversation_id: UUID) -> HttpResponse:
    """Rename a practice conversation."""
    conv = _own_practice(request, conversation_id)
    form = RenameForm(request.POST, instance=conv)
    if form.is_valid():
        services.practice_rename(conversation=conv, title=form.cleaned_data["title"])
    if request.htmx:
        context = {"conversation": conv, "form": form}
        return render(request, "chat/practice/conversation.html#title", context)
    return redirect("conversation", conversation_id=conv.pk)


@login_required
@require_http_methods(["GET", "POST"])
def delete(request: HtmxHttpRequest, conversation_id: UUID) -> HttpResponse:
    """Delete a practice conversation, after confirmation."""
    conv = _own_practice(request, conversation_id)
    if request.method == "POST":
        services.practice_delete(conversation=conv)
        return redirect("home")
    return render(request, "chat/practice/confirm_delete.html", {"conversation": conv})


@login_required
@require_GET
def export(request: HtmxHttpRequest, conversation_id: UUID, fmt: str) -> HttpResponse:
    """Download a conversation as Markdown or JSON (practice, or a room one belongs to)."""
    try:
        conv = conversations.conversation_for(request.user, conversation_id, require_member=True)
    except conversations.NotAMemberError as exc:
        raise Http404 from exc
    if conv is None:
        raise Http404
    messages = list(conversations.messages_qs(conv.pk))
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


@login_required
@require_POST
def finish(request: HtmxHttpRequest, conversation_id: UUID) -> HttpResponse:
    """Finish practice: end the session and open its report."""
    conv = _own_practice(request, conversation_id)
    services.practice_finish(conversation=conv)
    return redirect("conversation-report", conversation_id=conv.pk)


@login_required
@require_GET
def report(request: HtmxHttpRequest, conversation_id: UUID) -> HttpResponse:
    """A session's report: each answer with its findings and scores, then three priorities."""
    conv = _own_practice(request, conversation_id)
    return render(request, "chat/practice/report.html", {"report": progress.session_report(conv)})


@login_required
@require_GET
def progress_page(request: HtmxHttpRequest) -> HttpResponse:
    """Skills over time (chart and table), best answers, days practised in a row."""
    return render(request, "chat/practice/progress.html", {"p": progress.progress(request.user)})


def _answer(conv: Conversation, message_id: UUID) -> Message:
    found = Message.objects.filter(pk=message_id, conversation=conv, role=Message.Role.USER)
    message = found.select_related("feedback").first()
    if message is None:
        raise Http404
    return message


@login_required
@require_POST
def show_version(request: HtmxHttpRequest, conversation_id: UUID, message_id: UUID) -> HttpResponse:
    """Switch the conversation to one version of an answer (and the path after it)."""
    conv = _own_practice(request, conversation_id)
    try:
        services.version_show(conversation=conv, message_id=message_id)
    except services.NoSuchVersionError as exc:
        raise Http404 from exc
    if request.htmx:
        # The whole conversation changes: reload the page rather than patch it.
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    return redirect("conversation", conversation_id=conv.pk)


@login_required
@require_GET
def compare(request: HtmxHttpRequest, conversation_id: UUID, message_id: UUID) -> HttpResponse:
    """An answer's versions side by side, each with its findings and scores."""
    conv = _own_practice(request, conversation_id)
    versions = services.versions_of(_answer(conv, message_id))
    columns = [
        (i, v, cards.card_for(v.feedback, v.content) if hasattr(v, "feedback") else None)
        for i, v in enumerate(versions, 1)
    ]
    return render(request, "chat/practice/compare.html", {"conversation": conv, "columns": columns})
