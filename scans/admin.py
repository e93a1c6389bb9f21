"""Admin for scans: read-only results, filters by status/verdict/kind, search by file name, hash or owner."""

from __future__ import annotations

import json

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from scans.models import Scan
from scans.services import scan_delete


@admin.register(Scan)
class ScanAdmin(admin.ModelAdmin):
    """Scans are written only by uploads and jobs; the admin looks, and deletes through `scan_delete`."""

    list_display = [
        "id",
        "owner",
        "kind",
        "status",
        "verdict",
        "fake_probability",
        "original_filename",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "verdict", "kind", "created_at"]
    search_fields = ["original_filename", "sha256", "owner__username", "owner__email"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    fields = [
        "id",
        "owner",
        "kind",
        "status",
        "verdict",
        "fake_probability",
        "original_filename",
        "content_type",
        "size_bytes",
        "sha256",
        "file",
        "image_model_version",
        "video_model_version",
        "job_id",
        "attempts",
        "error_message",
        "created_at",
        "started_at",
        "finished_at",
        "progress_pretty",
        "timings_pretty",
        "faces_pretty",
        "result_pretty",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Scan | None = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Scan) -> None:
        scan_delete(scan=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Scan]) -> None:
        for scan in queryset:
            scan_delete(scan=scan, actor=request.user)

    @admin.display(description="progress")
    def progress_pretty(self, scan: Scan) -> str:
        return _pretty_json(scan.progress)

    @admin.display(description="timings")
    def timings_pretty(self, scan: Scan) -> str:
        return _pretty_json(scan.timings)

    @admin.display(description="faces")
    def faces_pretty(self, scan: Scan) -> str:
        return _pretty_json(scan.faces)

    @admin.display(description="result")
    def result_pretty(self, scan: Scan) -> str:
        return _pretty_json(scan.result)


def _pretty_json(value: object) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))
