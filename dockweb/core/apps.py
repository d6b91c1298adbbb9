"""App config of core."""

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "dockweb.core"
    label = "core"
    default_auto_field = "django.db.models.BigAutoField"
