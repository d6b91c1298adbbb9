"""App config of backups."""

from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "dockweb.backups"
    label = "backups"
    default_auto_field = "django.db.models.BigAutoField"
