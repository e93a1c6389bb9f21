"""Writes and reads of share links: make one for a scan, revoke it, open it (counting every view).

A link is found by the digest of the token presented (`ShareLink.token_digest`): the database never holds a token,
and the lookup compares digests in an index, so how long it takes says nothing about how close a guess was.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from newsroom.audit import audit_record
from newsroom.models import AuditEvent, ShareLink, share_token_digest
from newsroom.reviews import scan_can_review
from newsroom.services import ActionRefused
from scans.models import Scan

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

SHARE_MAX_DAYS = 365
SHARE_VIEWS = ("page", "pdf", "original", "evidence")
# new_share_token makes 43 characters; anything much longer is no token of ours and is not hashed.
SHARE_TOKEN_MAX_LENGTH = 64


class ShareLinkGone(Exception):
    """A share link that opens nothing: 404 for an unknown token, 410 for one that expired or was revoked."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


def _require_sharer(*, scan: Scan, user: AbstractBaseUser, team_role: str | None) -> None:
    if not scan_can_review(scan=scan, user=user, team_role=team_role):
        raise ActionRefused(
            "Viewers cannot share scans; an owner of the team can make you an analyst.", status_code=403
        )


def share_links_for_scan(*, scan: Scan, user: AbstractBaseUser, team_role: str | None) -> list[ShareLink]:
    """The scan's share links, newest first, for those who may share it (the others get `ActionRefused`, 403)."""
    _require_sharer(scan=scan, user=user, team_role=team_role)
    return list(ShareLink.objects.filter(scan=scan))


@transaction.atomic
def share_link_create(
    *,
    scan: Scan,
    actor: AbstractBaseUser,
    team_role: str | None,
    expires_in_days: int | None = None,
    include_original: bool = False,
) -> ShareLink:
    """A new read-only link to the scan's result (uploader, or an owner or analyst of its team), optionally expiring
    after `expires_in_days` (1 to 365), with the original file only when `include_original`.

    The link's token is in `plain_token` of the returned link and nowhere else: the caller shows it now or never.
    """
    _require_sharer(scan=scan, user=actor, team_role=team_role)
    if scan.status != Scan.Status.DONE:
        raise ActionRefused("Only a finished scan can be shared: wait for its verdict.")
    if expires_in_days is not None and not 1 <= int(expires_in_days) <= SHARE_MAX_DAYS:
        raise ActionRefused(f"A link expires after 1 to {SHARE_MAX_DAYS} days, or never.")
    link = ShareLink.objects.create(
        scan=scan,
        include_original=bool(include_original),
        expires_at=timezone.now() + timedelta(days=int(expires_in_days)) if expires_in_days else None,
        created_by=actor,
        created_by_name=actor.get_username(),
    )
    audit_record(
        action=AuditEvent.Action.SHARED,
        actor=actor,
        team_id=scan.case.team_id if scan.case_id else None,
        scan_id=scan.pk,
        scan_name=scan.original_filename,
        detail={
            "link": link.pk,
            "expires_at": link.expires_at.isoformat() if link.expires_at else None,
            "include_original": link.include_original,
        },
    )
    return link


@transaction.atomic
def share_link_revoke(*, link: ShareLink, actor: AbstractBaseUser, team_role: str | None) -> ShareLink:
    """Turn the link off for good (same people as may make one); revoking it again changes nothing."""
    scan = link.scan
    _require_sharer(scan=scan, user=actor, team_role=team_role)
    if ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()) == 1:
        audit_record(
            action=AuditEvent.Action.UNSHARED,
            actor=actor,
            team_id=scan.case.team_id if scan.case_id else None,
            scan_id=scan.pk,
            scan_name=scan.original_filename,
            detail={"link": link.pk, "views": link.view_count},
        )
    link.refresh_from_db()
    return link


def share_link_open(*, token: str) -> ShareLink:
    """The working link with this token, its scan loaded; `ShareLinkGone` for an unknown, expired or revoked one."""
    token = str(token)
    link = (
        ShareLink.objects.select_related("scan", "scan__image_model_version", "scan__video_model_version", "scan__case")
        .filter(token_digest=share_token_digest(token))
        .first()
        if len(token) <= SHARE_TOKEN_MAX_LENGTH
        else None
    )
    if link is None:
        raise ShareLinkGone("There is no shared result at this address: check the link you were sent.", status_code=404)
    state = link.state(timezone.now())
    if state == "revoked":
        raise ShareLinkGone("This link was turned off by the person who shared it.", status_code=410)
    if state == "expired":
        raise ShareLinkGone("This link has expired. Ask the person who shared it for a new one.", status_code=410)
    return link


@transaction.atomic
def share_link_count_view(*, link: ShareLink, what: str) -> None:
    """Count one view through the link (`what`: page, pdf or original) and put it in the audit log."""
    now = timezone.now()
    ShareLink.objects.filter(pk=link.pk).update(view_count=F("view_count") + 1, last_viewed_at=now)
    scan = link.scan
    audit_record(
        action=AuditEvent.Action.VIEWED_SHARED,
        actor=None,
        team_id=scan.case.team_id if scan.case_id else None,
        scan_id=scan.pk,
        scan_name=scan.original_filename,
        detail={"link": link.pk, "what": what},
    )
