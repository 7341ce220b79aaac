"""Profile page, with inline validation for htmx; the language switch."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views import i18n
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import ProfileForm
from accounts.http import HtmxHttpRequest
from accounts.middleware import remember_language
from accounts.services import user_set_language


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Django's set_language (cookie and redirect); a signed-in person's profile keeps it too."""
    response = i18n.set_language(request)
    language = request.POST.get("language", "")
    if request.user.is_authenticated and language in dict(settings.LANGUAGES):
        user_set_language(user=request.user, language=language)
    return response


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HtmxHttpRequest) -> HttpResponse:
    """Show and edit nickname, organisation and language."""
    form = ProfileForm(request.POST or None, instance=request.user)
    template = "accounts/profile.html"
    if request.method == "POST":
        # An htmx field check validates without saving: it only renders the form partial.
        if request.htmx and request.headers.get("X-Validate-Only"):
            form.is_valid()
            return render(request, template + "#profile-form", {"form": form})
        if form.is_valid():
            user = form.save()
            if "language" in form.changed_data:
                # The whole page changes language, not just the form: load it again.
                language = user.language or translation.get_language_from_request(request)
                with translation.override(language):
                    messages.success(request, _("Your profile was saved."))
                if request.htmx:
                    response = HttpResponse(headers={"HX-Redirect": reverse("profile")})
                else:
                    response = redirect("profile")
                remember_language(response, user.language)
                return response
            if request.htmx:
                # Confirmed in place; a flash message here would only turn up on a later page.
                return render(request, template + "#profile-form", {"form": form, "saved": True})
            messages.success(request, _("Your profile was saved."))
            return redirect("profile")
        if request.htmx:
            # 200, not 422: htmx only swaps successful responses, and the errors must show.
            return render(request, template + "#profile-form", {"form": form})
    return render(request, template, {"form": form})
