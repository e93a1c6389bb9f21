"""Team and case API routes under /api/v1/ (namespace `newsroom_api`)."""

from __future__ import annotations

from django.urls import path

from newsroom import apis

app_name = "newsroom_api"

# str, not uuid, converters: a malformed id must reach the view and get the same 404 as a team one is not in.
urlpatterns = [
    path("teams/", apis.TeamListApi.as_view(), name="team-list"),
    path("teams/<str:team_id>/", apis.TeamDetailApi.as_view(), name="team-detail"),
    path("teams/<str:team_id>/members/", apis.TeamMemberListApi.as_view(), name="team-members"),
    path("teams/<str:team_id>/members/<str:username>/", apis.TeamMemberDetailApi.as_view(), name="team-member-detail"),
    path("teams/<str:team_id>/audit/", apis.TeamAuditApi.as_view(), name="team-audit"),
    path("cases/", apis.CaseListApi.as_view(), name="case-list"),
    path("cases/<str:case_id>/", apis.CaseDetailApi.as_view(), name="case-detail"),
    path("scans/<str:scan_id>/reviews/", apis.ScanReviewListApi.as_view(), name="scan-reviews"),
    path("scans/<str:scan_id>/shares/", apis.ScanShareListApi.as_view(), name="scan-shares"),
    path("scans/<str:scan_id>/shares/<str:share_id>/", apis.ScanShareDetailApi.as_view(), name="scan-share-detail"),
]
