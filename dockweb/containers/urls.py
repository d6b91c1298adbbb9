"""Page routes of containers."""

from django.urls import path

from dockweb.containers import views
from dockweb.live import views as live_views

urlpatterns = [
    path("", views.container_list, name="container-list"),
    path("run/", views.container_run, name="container-run"),
    path("bulk/", views.container_bulk, name="container-bulk"),
    path("<str:ref>/", views.container_detail, name="container-detail"),
    path("<str:ref>/logs.txt", views.container_logs_download, name="container-logs"),
    # Before the action route, which would take "logs" and "assign" for action names.
    path("<str:ref>/logs/", views.container_log_tail, name="container-log-tail"),
    path("<str:ref>/assign/", views.container_assign, name="container-assign"),
    path("<str:ref>/attach/", views.container_attach, name="container-attach"),
    path("<str:ref>/logs/window/", live_views.logs_window, name="container-logs-window"),
    path("<str:ref>/logs/search/", live_views.logs_search, name="container-logs-search"),
    path("<str:ref>/<str:action>/", views.container_action, name="container-action"),
]
