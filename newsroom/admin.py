"""Teams and their cases in the Django admin (staff only)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from newsroom.models import AuditEvent, Case, Membership, Team


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "created_by", "created_at"]
    search_fields = ["name", "memberships__user__username"]
    inlines = [MembershipInline]


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["title", "team", "status", "created_by", "created_at"]
    list_filter = ["status"]
    search_fields = ["title", "team__name"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The whole audit log, every team's and personal scans' alike; read-only (the log is append-only)."""

    list_display = ["created_at", "actor_name", "action", "scan_name", "team"]
    list_filter = ["action"]
    search_fields = ["actor_name", "scan_name", "scan_reference", "team__name"]
    date_hierarchy = "created_at"
    readonly_fields = ["created_at", "actor", "actor_name", "action", "team", "scan_reference", "scan_name", "detail"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
