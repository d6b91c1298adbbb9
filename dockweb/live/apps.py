"""App config: connects the signals that close live sockets of users logged out or removed from a team."""

from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "dockweb.live"
    label = "live"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dockweb.live import signals  # noqa: F401  (connects the receivers)
