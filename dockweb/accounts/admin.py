"""Django admin for site admins: teams with their members, tokens (never their secret)."""

from django.contrib import admin

from dockweb.accounts.models import ApiToken, Membership, Team


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created", "last_used", "expires", "revoked"]
    readonly_fields = ["user", "name", "prefix", "digest", "created", "last_used"]
    list_filter = ["revoked"]

    def has_add_permission(self, request) -> bool:
        return False  # tokens are issued from the tokens page, where their secret is shown once
