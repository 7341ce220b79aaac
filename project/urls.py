"""URL map."""

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path, register_converter

from accounts.views import set_language
from project import health
from project.converters import BoundedIntConverter

# `<id:...>`: a database id that fits a 64-bit integer (before chat.urls uses it).
register_converter(BoundedIntConverter, "id")

# The admin signs in through allauth (as allauth documents): its own login form had no
# failed-login limit. Anonymous visitors are sent to allauth's log-in with `next`; signed-in
# people who are not active staff get 403.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """Browsers ask for /favicon.ico whatever the page links: send them to the SVG icon.

    Resolved per request, not at import: the hashed static name exists only after collectstatic.
    """
    return HttpResponsePermanentRedirect(static("img/favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon),
    path("health/", health.health, name="health"),
    path("health/detailed/", health.health_detailed, name="health-detailed"),
    path("admin/", admin.site.urls),
    # Django's set_language, wrapped so a signed-in person's profile remembers the choice;
    # same path and name, so it answers first.
    path("i18n/setlang/", set_language, name="set_language"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("accounts/", include("allauth.urls")),
    path("", include("accounts.urls")),
    path("", include("chat.urls")),
]
