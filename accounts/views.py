"""Profile page, with inline validation for htmx."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from accounts.forms import ProfileForm


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    """Show and edit nickname and organisation."""
    form = ProfileForm(request.POST or None, instance=request.user)
    template = "accounts/profile.html"
    if request.method == "POST":
        # An htmx field check validates without saving: it only renders the form partial.
        if request.htmx and request.headers.get("X-Validate-Only"):
            form.is_valid()
            return render(request, template + "#profile-form", {"form": form})
        if form.is_valid():
            form.save()
            if request.htmx:
                # Confirmed in place; a flash message here would only turn up on a later page.
                return render(request, template + "#profile-form", {"form": form, "saved": True})
            messages.success(request, _("Your profile was saved."))
            return redirect("profile")
        if request.htmx:
            # 200, not 422: htmx only swaps successful responses, and the errors must show.
            return render(request, template + "#profile-form", {"form": form})
    return render(request, template, {"form": form})
