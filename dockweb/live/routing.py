"""Websocket routes of the live pages (see the protocol in the consumers' docstrings)."""

from django.urls import path

from dockweb.live import consumers

C = "ws/hosts/<int:host_id>/containers/<str:ref>"

websocket_urlpatterns = [
    path(f"{C}/logs/", consumers.LogsConsumer.as_asgi()),
    path(f"{C}/exec/", consumers.ExecConsumer.as_asgi()),
    path(f"{C}/attach/", consumers.AttachConsumer.as_asgi()),
    path(f"{C}/stats/", consumers.StatsConsumer.as_asgi()),
    path("ws/hosts/<int:host_id>/stats/", consumers.HostStatsConsumer.as_asgi()),
    path("ws/hosts/<int:host_id>/events/", consumers.EventsConsumer.as_asgi()),
    path("ws/jobs/<int:job_id>/", consumers.JobConsumer.as_asgi()),
]
