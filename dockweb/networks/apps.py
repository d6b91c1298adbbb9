"""App config of networks."""

from django.apps import AppConfig


class NetworksConfig(AppConfig):
    name = "dockweb.networks"
    label = "networks"
    default_auto_field = "django.db.models.BigAutoField"
