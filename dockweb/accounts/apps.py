"""App config: connects the login audit signals when Django starts."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "dockweb.accounts"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dockweb.accounts import signals  # noqa: F401  (connects the receivers)
