"""Django admin: jobs and the audit log, read-only."""

from django.contrib import admin

from dockweb.core.models import AuditEntry, Job


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["time", "actor_name", "team_slug", "action", "object_type", "object_name", "result", "source_ip"]
    list_filter = ["result", "action", "team_slug"]
    search_fields = ["actor_name", "object_name", "object_id", "message"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["pk", "kind", "target", "state", "progress", "user", "team", "created", "finished"]
    list_filter = ["state", "kind"]
    readonly_fields = [f.name for f in Job._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
