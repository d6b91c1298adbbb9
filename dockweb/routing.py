"""Websocket routes (Channels): the live consumers (logs, exec, attach, stats, events, job progress)."""

from dockweb.live.routing import websocket_urlpatterns as live_patterns

websocket_urlpatterns: list = [*live_patterns]
