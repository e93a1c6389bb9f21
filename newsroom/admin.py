"""Teams and their cases in the Django admin (staff only)."""

from __future__ import annotations

from django.contrib import admin

from newsroom.models import Case, Membership, Team


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
