"""Teams, their members with a role, and the case folders a team files its scans into."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models


class Team(models.Model):
    """A verification desk: people who work stories together. Its cases and their scans are shared by its members."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "created_at"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """One person in one team, with what they may do there.

    owner: everything, and manage the members; analyst: upload, file, label and share; viewer: read only.
    """

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ANALYST = "analyst", "Analyst"
        VIEWER = "viewer", "Viewer"

    # Roles that may add scans to the team's cases and edit its cases.
    CONTRIBUTOR_ROLES = (Role.OWNER, Role.ANALYST)

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_memberships")
    role = models.CharField(max_length=8, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="membership_one_per_team")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"

    @property
    def can_contribute(self) -> bool:
        return self.role in self.CONTRIBUTOR_ROLES

    @property
    def can_manage(self) -> bool:
        return self.role == self.Role.OWNER


class Case(models.Model):
    """A story a team works on: a folder of scans with a title, a note, and whether it is still open.

    A closed case is kept and readable; nothing new is filed into it until it is opened again.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="cases")
    title = models.CharField(max_length=200)
    note = models.TextField(blank=True, max_length=5000)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class ScanReview(models.Model):
    """A human decision on a scan, recorded by its owner or an analyst or owner of the team whose case holds it.

    Rows are never changed or deleted (only with their scan): the latest is the scan's current label, the earlier
    ones its history, each with who decided, when, and what the label was before.
    """

    class Label(models.TextChoices):
        CONFIRMED_FAKE = "confirmed_fake", "Confirmed fake"
        CONFIRMED_REAL = "confirmed_real", "Confirmed real"
        DISPUTED = "disputed", "Disputed"

    scan = models.ForeignKey("scans.Scan", on_delete=models.CASCADE, related_name="reviews")
    label = models.CharField(max_length=16, choices=Label.choices)
    note = models.TextField(blank=True, max_length=2000)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="scan_reviews"
    )
    # Kept as text too, so the history still names the reviewer after their account is gone.
    reviewer_name = models.CharField(max_length=150)
    previous_label = models.CharField(max_length=16, choices=Label.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["scan", "-created_at"], name="review_scan_recent")]

    def __str__(self) -> str:
        return f"{self.label} on scan {self.scan_id} by {self.reviewer_name}"


class AuditEvent(models.Model):
    """Who did what to a scan or a team, and when: append-only, kept after the scan, the team or the person goes.

    `team` is the team whose case held the scan at the time (None for a scan in its owner's own space); the team's
    owners see its events, staff see all of them in the admin. `scan_reference` and `scan_name` name the scan
    without a foreign key, so a deletion is still on record.
    """

    class Action(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"
        VIEWED_SHARED = "viewed_shared", "Viewed through a share link"
        LABELLED = "labelled", "Labelled"
        SHARED = "shared", "Created a share link"
        UNSHARED = "unshared", "Revoked a share link"
        MOVED = "moved", "Moved"
        DELETED = "deleted", "Deleted"
        MEMBER_ADDED = "member_added", "Added a member"
        MEMBER_ROLE_CHANGED = "member_role_changed", "Changed a member's role"
        MEMBER_REMOVED = "member_removed", "Removed a member"

    action = models.CharField(max_length=24, choices=Action.choices, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text: the record still names the person after their account is gone; empty for an anonymous viewer.
    actor_name = models.CharField(max_length=150, blank=True)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events")
    scan_reference = models.UUIDField(null=True, blank=True, db_index=True)
    scan_name = models.CharField(max_length=255, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "-created_at"], name="audit_team_recent")]

    def __str__(self) -> str:
        return f"{self.actor_name or 'anonymous'} {self.action} {self.scan_name or ''}".strip()


SHARE_TOKEN_PREFIX_LENGTH = 8


def new_share_token() -> str:
    """43 URL-safe characters from 256 random bits: a link nobody can guess."""
    return secrets.token_urlsafe(32)


def share_token_digest(token: str) -> str:
    """The SHA-256 hex of a share token: what is stored and looked up in its place.

    A plain hash (no salt, no slow KDF) is enough because the token is 256 random bits, not a password: nobody can
    guess one from its digest, and equal tokens must give equal digests so the link can be found by it.
    """
    return hashlib.sha256(token.encode()).hexdigest()


class ShareLink(models.Model):
    """A read-only link to one scan's result page and PDF, for someone without an account.

    Made by the scan's uploader or an owner or analyst of its team. It works until it expires (`expires_at`, if
    set) or is revoked; the original file is reachable through it only with `include_original`. Every view of the
    page, the PDF or the file is counted here and written to the audit log.

    Only the token's digest is stored, as with an API key: whoever reads the database or a backup cannot open the
    links. The token itself is in `plain_token` on the instance that made the link (`save` of a new one), for the
    create call to show once; a link loaded from the database has none and cannot give its URL again.
    """

    scan = models.ForeignKey("scans.Scan", on_delete=models.CASCADE, related_name="share_links")
    # unique: an index for the lookup of a presented token, and two links can never share one.
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    # Not secret (8 of 43 characters): tells the links apart in lists without letting anyone open them.
    token_prefix = models.CharField(max_length=SHARE_TOKEN_PREFIX_LENGTH, editable=False)
    include_original = models.BooleanField(default=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_by_name = models.CharField(max_length=150)
    view_count = models.PositiveIntegerField(default=0)
    last_viewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    # Not a field, never stored: set by `issue_token` on this one instance.
    plain_token: str | None = None

    def __str__(self) -> str:
        return f"share link {self.pk} of scan {self.scan_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """A new link gets its token here, so no link is ever stored without one (`ShareLink.objects.create`)."""
        if not self.token_digest:
            self.issue_token()
        super().save(*args, **kwargs)

    def issue_token(self) -> str:
        """A fresh token for this (unsaved) link: its digest and prefix go to the database, the token only into
        `plain_token`."""
        token = new_share_token()
        self.token_digest = share_token_digest(token)
        self.token_prefix = token[:SHARE_TOKEN_PREFIX_LENGTH]
        self.plain_token = token
        return token

    def state(self, now: datetime) -> str:
        """active, expired or revoked."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"
