"""App config of hosts."""

from django.apps import AppConfig


class HostsConfig(AppConfig):
    name = "dockweb.hosts"
    label = "hosts"
    default_auto_field = "django.db.models.BigAutoField"
