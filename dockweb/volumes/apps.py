"""App config of volumes."""

from django.apps import AppConfig


class VolumesConfig(AppConfig):
    name = "dockweb.volumes"
    label = "volumes"
    default_auto_field = "django.db.models.BigAutoField"
