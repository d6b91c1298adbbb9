"""App config of images."""

from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "dockweb.images"
    label = "images"
    default_auto_field = "django.db.models.BigAutoField"
