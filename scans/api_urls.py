"""Scan API routes under /api/v1/ (namespace `api`)."""

from __future__ import annotations

from django.urls import path

from scans import apis, batch_apis, metrics

app_name = "api"

urlpatterns = [
    path("scans/", apis.ScanListApi.as_view(), name="scan-list"),
    path("scans/export.csv", apis.ScanExportCsvApi.as_view(), name="scan-export-csv"),
    # Before the detail route, whose `<str:scan_id>` would otherwise take "bulk-delete" as an id.
    path("scans/bulk-delete/", apis.ScanBulkDeleteApi.as_view(), name="scan-bulk-delete"),
    # A str, not a uuid converter: a malformed id must reach the view and get the same 404 as a foreign one.
    path("scans/<str:scan_id>/", apis.ScanDetailApi.as_view(), name="scan-detail"),
    path("scans/<str:scan_id>/evidence/<str:name>", apis.ScanEvidenceApi.as_view(), name="scan-evidence"),
    path("scans/<str:scan_id>/export.json", apis.ScanExportJsonApi.as_view(), name="scan-export-json"),
    path("scans/<str:scan_id>/report.pdf", apis.ScanExportPdfApi.as_view(), name="scan-export-pdf"),
    path("health/", apis.HealthApi.as_view(), name="health"),
    path("metrics/", metrics.MetricsApi.as_view(), name="metrics"),
    path("batches/", batch_apis.BatchListApi.as_view(), name="batch-list"),
    path("batches/<str:batch_id>/", batch_apis.BatchDetailApi.as_view(), name="batch-detail"),
    path("batches/<str:batch_id>/export.csv", batch_apis.BatchCsvApi.as_view(), name="batch-csv"),
]
