"""Writes on reviewer labels: record a human decision on a scan (confirmed fake, confirmed real, disputed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from newsroom.audit import audit_record
from newsroom.models import AuditEvent, Membership, ScanReview
from newsroom.services import ActionRefused
from scans.models import Scan
from scans.signals import scan_reviewed

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

REVIEW_NOTE_MAX = 2000
LABEL_NAMES = ", ".join(ScanReview.Label.values)


def scan_can_review(*, scan: Scan, user: AbstractBaseUser, team_role: str | None) -> bool:
    """Whether `user` may label the scan: its uploader, or an owner or analyst of the team whose case holds it."""
    return scan.owner_id == user.pk or team_role in Membership.CONTRIBUTOR_ROLES


@transaction.atomic
def scan_review_add(
    *, scan: Scan, reviewer: AbstractBaseUser, team_role: str | None, label: str, note: str = ""
) -> ScanReview:
    """Record `label` (with an optional note) as the scan's current human decision, keeping the one it replaces.

    `team_role` is the reviewer's role in the team of the scan's case (`scans.selectors.scan_team_role`): a viewer
    is refused (403), as is anyone who is neither the uploader nor an owner or analyst of that team. Only a
    finished scan with a verdict is reviewed (400 otherwise). The scan's row is locked, so two reviewers at once
    each record the other's label as the previous one in turn, never the same one twice.
    """
    if not scan_can_review(scan=scan, user=reviewer, team_role=team_role):
        raise ActionRefused(
            "Viewers cannot label scans; an owner of the team can make you an analyst.", status_code=403
        )
    if label not in ScanReview.Label.values:
        raise ActionRefused(f"A label is one of: {LABEL_NAMES}.")
    note = str(note or "").strip()
    if len(note) > REVIEW_NOTE_MAX:
        raise ActionRefused(f"A review note has at most {REVIEW_NOTE_MAX} characters.")
    locked = Scan.objects.select_for_update().only("id", "status").get(pk=scan.pk)
    if locked.status != Scan.Status.DONE:
        raise ActionRefused("Only a finished scan can be reviewed: wait for its verdict.")
    previous = ScanReview.objects.filter(scan_id=scan.pk).values_list("label", flat=True).first()
    review = ScanReview.objects.create(
        scan_id=scan.pk,
        label=label,
        note=note,
        reviewer=reviewer,
        reviewer_name=reviewer.get_username(),
        previous_label=previous or "",
    )
    audit_record(
        action=AuditEvent.Action.LABELLED,
        actor=reviewer,
        team_id=scan.case.team_id if scan.case_id else None,
        scan_id=scan.pk,
        scan_name=scan.original_filename,
        detail={"label": label, "previous_label": previous or None, "note": note},
    )
    # The owner's webhooks get the decision (`scan.reviewed`) once it is committed.
    transaction.on_commit(lambda: scan_reviewed.send(sender=Scan, scan_id=scan.pk), robust=True)
    return review
