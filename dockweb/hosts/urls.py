"""Page routes of hosts (the overview's disk and events fragments live in core)."""

from django.urls import path

from dockweb.hosts import views

urlpatterns = [
    path("", views.host_list, name="host-list"),
    path("<str:name>/", views.host_detail, name="host-detail"),
    path("<str:name>/check/", views.host_check, name="host-check"),
    path("<str:name>/remove/", views.host_remove, name="host-remove"),
]
