from django.urls import path

from chat.classes import views

urlpatterns = [
    path("classes/", views.class_list, name="class-list"),
    path("classes/new/", views.class_create, name="class-create"),
    path("classes/<id:class_id>/", views.class_detail, name="class-detail"),
    path("classes/<id:class_id>/start/", views.session_start, name="class-session-start"),
    path("classes/<id:class_id>/enrol/", views.class_enrol, name="class-enrol"),
    path("classes/invite/<str:code>/", views.class_invite, name="class-invite"),
    path("classes/live/<uuid:session_id>/", views.session_live, name="class-session"),
    path(
        "classes/live/<uuid:session_id>/report/",
        views.session_report,
        name="class-session-report",
    ),
    path(
        "classes/live/<uuid:session_id>/activity.csv",
        views.session_activity_csv,
        name="class-session-activity-csv",
    ),
    path("join/", views.join, name="class-join"),
    path("join/<str:code>/", views.join_code, name="class-join-code"),
]
