"""Django admin: hosts."""

from django.contrib import admin

from dockweb.hosts.models import Host


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ["name", "engine_url", "queue", "health", "checked_at", "engine_version"]
    readonly_fields = ["health", "health_message", "checked_at", "engine_version"]
