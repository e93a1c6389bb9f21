"""Dashboard pages of teams and cases (namespace `newsroom`)."""

from __future__ import annotations

from django.urls import path

from newsroom import views

app_name = "newsroom"

urlpatterns = [
    path("teams/", views.teams, name="teams"),
    path("teams/<uuid:team_id>/", views.team, name="team"),
    path("teams/<uuid:team_id>/audit/", views.team_audit, name="team-audit"),
    path("cases/<uuid:case_id>/", views.case, name="case"),
    # Beside the scan's own pages (scans/urls.py), which know nothing of reviews.
    path("scans/<uuid:scan_id>/review/", views.scan_review, name="scan-review"),
    path("scans/<uuid:scan_id>/shares/", views.scan_shares, name="scan-shares"),
    # Public: the token is the only key (newsroom.shares).
    path("shared/<str:token>/", views.shared_scan, name="shared-scan"),
    path("shared/<str:token>/report.pdf", views.shared_pdf, name="shared-pdf"),
    path("shared/<str:token>/evidence/<str:name>", views.shared_evidence, name="shared-evidence"),
    path("shared/<str:token>/file/", views.shared_file, name="shared-file"),
]
