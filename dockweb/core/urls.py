"""Page routes of core."""

from django.urls import path

from dockweb.core import views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("hosts/<str:name>/disk/", views.host_disk, name="host-disk"),
    path("hosts/<str:name>/events/", views.host_events, name="host-events"),
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/<int:pk>/", views.job_detail, name="job-detail"),
    path("audit/", views.audit_list, name="audit-list"),
]
