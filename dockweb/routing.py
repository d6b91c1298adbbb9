"""Websocket routes (Channels). The live consumers (logs, exec, stats, events, job progress) plug in here."""

websocket_urlpatterns: list = []
