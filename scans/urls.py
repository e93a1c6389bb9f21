"""Dashboard pages (HTML); the scan API lives in scans/api_urls.py."""

from __future__ import annotations

from django.urls import path

from scans import batch_views, views

app_name = "scans"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("batches/", batch_views.batch_new, name="batch-new"),
    path("batches/<uuid:batch_id>/", batch_views.batch_detail, name="batch"),
    path("batches/<uuid:batch_id>/export.csv", batch_views.batch_csv, name="batch-csv"),
    path("<uuid:scan_id>/", views.detail, name="detail"),
    path("<uuid:scan_id>/delete/", views.delete, name="delete"),
    path("<uuid:scan_id>/move/", views.move, name="move"),
    path("<uuid:scan_id>/file/", views.scan_file, name="file"),
    path("<uuid:scan_id>/evidence/<str:name>", views.evidence, name="evidence"),
    path("<uuid:scan_id>/export.json", views.export_json, name="export-json"),
    path("<uuid:scan_id>/report.pdf", views.export_pdf, name="export-pdf"),
    path("export.csv", views.export_csv, name="export-csv"),
    path("delete/", views.delete_many, name="delete-many"),
]
