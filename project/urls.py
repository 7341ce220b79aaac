"""URL map."""

from django.contrib import admin
from django.urls import include, path

from project import health

urlpatterns = [
    path("health/", health.health, name="health"),
    path("health/detailed/", health.health_detailed, name="health-detailed"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("accounts.urls")),
    path("", include("chat.urls")),
]
