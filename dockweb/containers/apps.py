"""App config of containers."""

from django.apps import AppConfig


class ContainersConfig(AppConfig):
    name = "dockweb.containers"
    label = "containers"
    default_auto_field = "django.db.models.BigAutoField"
