"""Pages of live classes: the coach's classes, a class, a live session, joining, reports."""

from __future__ import annotations

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.http import HtmxHttpRequest as HttpRequest
from chat.classes import feedback, frames, report, selectors, services
from chat.classes.forms import ClassForm, EnrolForm, JoinForm
from chat.models import Class, ClassSession


def _coached(request: HttpRequest, class_id: int) -> Class:
    klass = selectors.class_for(request.user, class_id)
    if klass is None or klass.coach_id != request.user.pk:
        raise Http404
    return klass


def _list_page(request: HttpRequest, form: ClassForm, status: int = 200) -> HttpResponse:
    coach = services.can_coach(request.user)
    context = {
        "form": form if coach else None,
        "coached": selectors.classes_coached_by(request.user) if coach else [],
        "enrolled": selectors.classes_of_learner(request.user),
        "live": selectors.live_sessions_of_learner(request.user),
    }
    return render(request, "chat/classes/classes.html", context, status=status)


@login_required
@require_GET
def class_list(request: HttpRequest) -> HttpResponse:
    """A coach's classes and the form for a new one; a learner's classes."""
    return _list_page(request, ClassForm())


@login_required
@require_POST
def class_create(request: HttpRequest) -> HttpResponse:
    """Create a class (coaches and staff only)."""
    if not services.can_coach(request.user):
        raise Http404
    form = ClassForm(request.POST)
    if not form.is_valid():
        return _list_page(request, form, status=400)
    klass = services.class_create(
        coach=request.user,
        title=form.cleaned_data["title"],
        description=form.cleaned_data["description"],
        questions=form.cleaned_data["questions"] or "",
        persona=form.cleaned_data["persona"],
        seconds_per_question=form.cleaned_data["seconds_per_question"],
    )
    return redirect("class-detail", class_id=klass.pk)


@login_required
@require_GET
def class_detail(request: HttpRequest, class_id: int) -> HttpResponse:
    """A class: its questions, sessions (live and past, with reports), learners, invite link."""
    klass = selectors.class_for(request.user, class_id)
    if klass is None:
        raise Http404
    is_coach = klass.coach_id == request.user.pk
    context = {
        "klass": klass,
        "is_coach": is_coach,
        "sessions": selectors.sessions_of_class(klass),
        "learners": list(klass.learners.order_by("nickname")) if is_coach else [],
        "invite_url": request.build_absolute_uri(reverse("class-invite", args=[klass.invite_code]))
        if is_coach
        else "",
        "enrol_form": EnrolForm() if is_coach else None,
    }
    return render(request, "chat/classes/class.html", context)


@login_required
@require_POST
def session_start(request: HttpRequest, class_id: int) -> HttpResponse:
    """The coach opens a live session (waiting, with its join code)."""
    klass = _coached(request, class_id)
    session = services.session_start(klass=klass, by=request.user)
    return redirect("class-session", session_id=session.pk)


@login_required
@require_POST
def class_enrol(request: HttpRequest, class_id: int) -> HttpResponse:
    """Enrol an organisation's people in the class."""
    klass = _coached(request, class_id)
    form = EnrolForm(request.POST)
    if form.is_valid():
        added = services.enrol_organisation(
            klass=klass, organisation=form.cleaned_data["organisation"]
        )
        messages.success(request, _("%(n)d learners enrolled.") % {"n": added})
    return redirect("class-detail", class_id=klass.pk)


@login_required
@require_http_methods(["GET", "POST"])
def class_invite(request: HttpRequest, code: str) -> HttpResponse:
    """A class's invite link: enrols the person and opens the class."""
    klass = Class.objects.filter(invite_code=code).first()
    if klass is None:
        raise Http404
    if request.method == "POST":
        services.enrol(klass=klass, user=request.user)
        return redirect("class-detail", class_id=klass.pk)
    return render(request, "chat/classes/invite.html", {"klass": klass})


def _qr_svg(url: str) -> str:
    # segno writes an <svg> of black modules on a transparent ground, no script, no style.
    svg = segno.make(url, error="m").svg_inline(scale=5, dark="#111", light="#fff")
    return mark_safe(svg)  # noqa: S308 - built by segno from our own URL


@login_required
@require_GET
def session_live(request: HttpRequest, session_id: object) -> HttpResponse:
    """The live session: the coach's controls and dashboard, or a learner's screen."""
    session = selectors.session_for(request.user, session_id)
    if session is None:
        raise Http404
    is_coach = session.klass.coach_id == request.user.pk
    if not is_coach and session.state != ClassSession.State.ENDED:
        # An enrolled learner opening it from their class page joins it now.
        services.session_join(session=session, user=request.user)
    join_url = request.build_absolute_uri(reverse("class-join-code", args=[session.join_code]))
    context: dict[str, object] = {
        "session": session,
        "is_coach": is_coach,
        "join_url": join_url,
        **frames.stage_context(session),
    }
    if is_coach:
        context.update(
            qr_svg=_qr_svg(join_url),
            rows=selectors.dashboard_rows(session),
            hands=selectors.open_hands(session),
            counts=selectors.counts(session),
        )
    else:
        answer = feedback.recover(selectors.answer_of(session, request.user, session.current_step))
        context.update(
            answer=answer,
            ai=feedback.offer(answer, request.user) if answer is not None else None,
            hand=selectors.raised_hand(session, request.user),
        )
    return render(request, "chat/classes/live.html", context)


# --- joining by code ------------------------------------------------------------------------------


def _attempts_key(request: HttpRequest) -> str:
    return f"classjoin:{request.user.pk}:{request.META.get('REMOTE_ADDR', '')}"


def _too_many_attempts(request: HttpRequest) -> bool:
    return int(cache.get(_attempts_key(request), 0)) >= settings.JOIN_CODE_ATTEMPTS


def _wrong_attempt(request: HttpRequest) -> None:
    key = _attempts_key(request)
    if not cache.add(key, 1, timeout=settings.JOIN_CODE_WINDOW_SECONDS):
        try:
            cache.incr(key)
        except ValueError:
            cache.set(key, 1, timeout=settings.JOIN_CODE_WINDOW_SECONDS)


def _join(request: HttpRequest, typed: str) -> HttpResponse:
    form = JoinForm({"code": typed})
    if _too_many_attempts(request):
        form.add_error(
            "code", _("Too many wrong codes. Wait a few minutes, then ask your coach for the code.")
        )
        return render(request, "chat/classes/join.html", {"form": form}, status=429)
    session = selectors.session_by_code(typed)
    if session is None:
        _wrong_attempt(request)
        form.add_error(
            "code",
            _("No live session has this code. Check it with your coach: it may have ended."),
        )
        return render(request, "chat/classes/join.html", {"form": form}, status=404)
    services.session_join(session=session, user=request.user)
    return redirect("class-session", session_id=session.pk)


@login_required
@require_http_methods(["GET", "POST"])
def join(request: HttpRequest) -> HttpResponse:
    """The join form: a learner types the code shown by the coach."""
    if request.method == "POST":
        return _join(request, request.POST.get("code", ""))
    return render(request, "chat/classes/join.html", {"form": JoinForm()})


@login_required
@require_GET
def join_code(request: HttpRequest, code: str) -> HttpResponse:
    """The join URL (the QR code's target): joins and opens the session."""
    return _join(request, code)


# --- after the session ----------------------------------------------------------------------------


@login_required
@require_GET
def session_report(request: HttpRequest, session_id: object) -> HttpResponse:
    """The coach's report on a session, or a learner's own."""
    session = selectors.session_for(request.user, session_id)
    if session is None:
        raise Http404
    if session.klass.coach_id == request.user.pk:
        context = {"session": session, "report": report.session_report(session)}
        return render(request, "chat/classes/report.html", context)
    context = {"session": session, "items": report.learner_report(session, request.user)}
    return render(request, "chat/classes/learner_report.html", context)


@login_required
@require_GET
def session_activity_csv(request: HttpRequest, session_id: object) -> HttpResponse:
    """The session's activity log as a CSV download (the coach only)."""
    session = selectors.session_for(request.user, session_id)
    if session is None or session.klass.coach_id != request.user.pk:
        raise Http404
    response = HttpResponse(report.activity_csv(session), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="activity-{session.join_code}.csv"'
    return response
