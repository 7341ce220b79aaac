"""URL map."""

from django.contrib import admin
from django.urls import include, path

from accounts.views import set_language
from project import health

urlpatterns = [
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
