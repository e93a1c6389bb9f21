"""Scans: one uploaded image or video, its analysis state and its result."""

from __future__ import annotations

import secrets
import uuid
from pathlib import PurePath

from django.conf import settings
from django.db import models


def scan_upload_path(scan: Scan, filename: str) -> str:
    """Stored under a random name; the client's file name is kept only as display text."""
    suffix = PurePath(filename).suffix.lower()
    safe_suffix = suffix if suffix.isascii() and suffix[1:].isalnum() and len(suffix) <= 6 else ""
    return f"uploads/{uuid.uuid4().hex}{safe_suffix}"


class Scan(models.Model):
    """An uploaded file and what the models concluded about it.

    The row is the source of truth for the job's state: `status` only moves forward
    (queued -> processing -> done | failed) through conditional updates in `scans.services`,
    so a finished scan never goes back, whatever a late or duplicate job does.
    """

    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        VIDEO = "video", "Video"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Verdict(models.TextChoices):
        REAL = "real", "Real"
        FAKE = "fake", "Fake"
        UNCERTAIN = "uncertain", "Uncertain"
        NO_FACE = "no_face", "No face found"

    TERMINAL_STATUSES = (Status.DONE, Status.FAILED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="scans")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    file = models.FileField(upload_to=scan_upload_path, max_length=255)
    original_filename = models.CharField(max_length=255)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    content_type = models.CharField(max_length=64, blank=True)

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    verdict = models.CharField(max_length=12, choices=Verdict.choices, blank=True, db_index=True)
    fake_probability = models.FloatField(null=True, blank=True)
    faces = models.JSONField(default=list, blank=True)
    result = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    error_message = models.TextField(blank=True)

    image_model_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    video_model_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    # Set when the same user uploaded the same bytes (SHA-256) again while the same model versions were
    # active: the earlier result was copied instead of running the analysis again. Kept if that scan goes.
    reused_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    # Set when the file came in with others (scans.batches); each file is still its own scan.
    batch = models.ForeignKey(
        "scans.Batch", null=True, blank=True, on_delete=models.SET_NULL, related_name="scans", editable=False
    )
    job_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="scan_owner_recent")]

    def __str__(self) -> str:
        return f"{self.kind} scan {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.TERMINAL_STATUSES


# --- Batches (scans.batches) ------------------------------------------------------------------------


class Batch(models.Model):
    """Files uploaded together, in one API request or one dashboard drop; each accepted file is its own scan.

    `rejected` lists the files refused at upload ({"filename", "error", "status_code"}), so the batch
    accounts for every file that was sent.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batches")
    rejected = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"batch {self.id}"


# --- Webhooks (scans.webhooks) -----------------------------------------------------------------------


def webhook_secret_new() -> str:
    """A fresh signing secret: 256 random bits as hex."""
    return secrets.token_hex(32)


class WebhookEndpoint(models.Model):
    """A user's URL that receives a signed POST with the result whenever one of their scans finishes.

    Each endpoint has its own secret; deliveries carry `X-Unmask-Signature: sha256=<HMAC-SHA256 of
    "<timestamp>.<body>">` so the receiver can check that the call came from this platform, unaltered.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=64, default=webhook_secret_new, editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["owner", "url"], name="unique_webhook_url_per_owner")]

    def __str__(self) -> str:
        return f"webhook {self.url} ({self.owner_id})"


class WebhookDelivery(models.Model):
    """One attempt to POST a finished scan to an endpoint: what the receiver answered, or why it failed.

    The log outlives the scan (`scan` becomes null when it is deleted; `scan_reference` keeps its id).
    """

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    scan = models.ForeignKey(Scan, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    scan_reference = models.UUIDField()
    event = models.CharField(max_length=32)
    attempt = models.PositiveSmallIntegerField()
    succeeded = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_recent")]

    def __str__(self) -> str:
        outcome = "ok" if self.succeeded else "failed"
        return f"delivery of scan {self.scan_reference} to {self.endpoint_id}, attempt {self.attempt}: {outcome}"
