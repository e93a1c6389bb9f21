"""What the OpenAPI schema says about every operation beyond its shapes: a one-line summary, and the `401` an
operation answers without a valid token.

drf-spectacular runs `document_operations` after it has built the schema (SPECTACULAR_SETTINGS'
POSTPROCESSING_HOOKS), so the summaries live in one table here, keyed by operation id, and a new endpoint
without one fails the schema test instead of appearing unexplained in Swagger UI.
"""

from __future__ import annotations

from typing import Any

SUMMARIES = {
    "auth_token_create": "Get your API token with your username and password",
    "auth_token_regenerate_create": "Replace your API token (the old one stops working)",
    "batches_list": "List your batches, newest first",
    "batches_create": "Upload many files at once as one batch",
    "batches_retrieve": "One batch: its status, counts, scans and refused files",
    "batches_export.csv_retrieve": "A batch's scans as CSV",
    "health_retrieve": "Health of the database, Redis, workers and active models",
    "metrics_retrieve": "Prometheus metrics (staff only)",
    "scans_list": "List your scans, newest first, filtered",
    "scans_create": "Upload a photo or a video to scan, or give a link to one or to a page that shows one (`source_url`)",
    "scans_retrieve": "One scan: status, progress, verdict and evidence",
    "scans_destroy": "Delete a scan, its file and its evidence",
    "scans_partial_update": "File a scan into a case, or back into your own space",
    "teams_list": "List the teams you are in, with your role",
    "teams_create": "Create a team (you become its owner)",
    "teams_retrieve": "One team: its members and your role",
    "teams_partial_update": "Rename a team (owners)",
    "teams_destroy": "Delete a team and its cases (owners)",
    "teams_members_list": "List a team's members and their roles",
    "teams_members_create": "Add a member to a team by username (owners)",
    "teams_members_retrieve": "One member of a team",
    "teams_members_partial_update": "Change a member's role (owners)",
    "teams_members_destroy": "Remove a member, or leave a team",
    "teams_audit_list": "A team's audit log, newest first (owners)",
    "scans_shares_list": "A scan's share links, with their views (never their URLs)",
    "scans_shares_create": "Create a read-only share link to a scan's result and PDF (its URL is shown only here)",
    "scans_shares_retrieve": "One share link of a scan",
    "scans_shares_destroy": "Revoke a share link",
    "cases_list": "List the cases of your teams",
    "cases_create": "Open a case in one of your teams (owners and analysts)",
    "cases_retrieve": "One case of one of your teams",
    "cases_partial_update": "Edit, close or reopen a case (owners and analysts)",
    "scans_reviews_list": "A scan's reviewer labels, newest first (the first is current)",
    "scans_reviews_create": "Record a reviewer label on a scan: confirmed fake, confirmed real or disputed",
    "cases_destroy": "Delete a case (owners); its scans go back to their uploaders",
    "scans_evidence_retrieve": "One evidence image of a scan (crop, heatmap, key frame)",
    "scans_export.json_retrieve": "A scan as its JSON export document",
    "scans_report.pdf_retrieve": "A scan as a PDF report",
    "scans_bulk_delete_create": "Delete many of your scans at once",
    "scans_export.csv_retrieve": "Your scans as CSV, with the list's filters",
    "webhooks_list": "List your webhook receivers",
    "webhooks_create": "Register a webhook receiver (its secret is shown once)",
    "webhooks_retrieve": "One webhook receiver",
    "webhooks_destroy": "Remove a webhook receiver",
    "webhooks_resume_create": "Resume a paused webhook receiver",
    "webhooks_deliveries_list": "Recent webhook deliveries and their outcomes",
}
UNAUTHORIZED = "No valid token (`Authorization: Token ...`) or session was sent."
FORBIDDEN = "Signed in, but not a staff member."
STAFF_ONLY = frozenset({"metrics_retrieve"})


def document_operations(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Adds each operation's summary and, where it needs authentication, its 401 (and 403 for staff-only)."""
    error = {"$ref": "#/components/schemas/Error"} if "Error" in result.get("components", {}).get("schemas", {}) else {}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            operation_id = operation.get("operationId", "")
            if operation_id in SUMMARIES:
                operation.setdefault("summary", SUMMARIES[operation_id])
            if _needs_authentication(operation):
                responses = operation.setdefault("responses", {})
                responses.setdefault("401", _response(UNAUTHORIZED, error))
                if operation_id in STAFF_ONLY:
                    responses.setdefault("403", _response(FORBIDDEN, error))
    return result


def _needs_authentication(operation: dict[str, Any]) -> bool:
    # drf-spectacular lists a view's authentication schemes; none (the token endpoint) or `{}` among them
    # (the health check) means anonymous callers are served.
    security = operation.get("security") or []
    return bool(security) and {} not in security


def _response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema:
        response["content"] = {"application/json": {"schema": schema}}
    return response
