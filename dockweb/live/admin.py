"""Transcripts in the Django admin: read-only, for site admins."""

from django.contrib import admin
from django.utils.html import format_html

from dockweb.live.models import Transcript


@admin.register(Transcript)
class TranscriptAdmin(admin.ModelAdmin):
    list_display = ("started", "user", "kind", "container_name", "host_name", "command", "exit_code", "size")
    list_filter = ("kind", "host_name")
    search_fields = ("container_name", "command", "user__username")
    readonly_fields = [f.name for f in Transcript._meta.fields] + ["output"]

    @admin.display(description="output (last 64 KiB)")
    def output(self, obj):
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", obj.output_tail())

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser
