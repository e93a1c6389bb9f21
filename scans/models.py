"""Scans: one uploaded image or video, its analysis state and its result."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import PurePath

from django.conf import settings
from django.db import models

from ml.result import Analysis, Timings


def scan_upload_path(scan: Scan, filename: str) -> str:
    """Stored under a random name; the client's file name is kept only as display text."""
    suffix = PurePath(filename).suffix.lower()
    safe_suffix = suffix if suffix.isascii() and suffix[1:].isalnum() and len(suffix) <= 6 else ""
    return f"uploads/{uuid.uuid4().hex}{safe_suffix}"


class Scan(models.Model):
    """An uploaded file and what the models concluded about it.

    The row is the source of truth for the job's state: `status` only moves forward
    (queued -> processing -> done | failed; a scan by URL starts at fetching -> queued | failed) through
    conditional updates in `scans.services`,
    so a finished scan never goes back, whatever a late or duplicate job does.
    """

    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        VIDEO = "video", "Video"

    class Status(models.TextChoices):
        # A scan by URL while the worker downloads its media; then queued like an upload (or failed).
        FETCHING = "fetching", "Downloading"
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
    # Both blank only while a scan by URL is fetching: its media's kind and file are not known yet.
    kind = models.CharField(max_length=8, choices=Kind.choices, blank=True)
    file = models.FileField(upload_to=scan_upload_path, max_length=255, blank=True)
    original_filename = models.CharField(max_length=255)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    content_type = models.CharField(max_length=64, blank=True)
    # Where a scan by URL came from: the link given, and the media URL it was downloaded from at last.
    source_url = models.URLField(max_length=2000, blank=True)
    media_url = models.URLField(max_length=2000, blank=True)

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
    # The team case the scan is filed in (newsroom): every member of that team sees it, by their role. None: the
    # owner's own space, as before teams. A deleted case leaves its scans with their owners.
    case = models.ForeignKey(
        "newsroom.Case", null=True, blank=True, on_delete=models.SET_NULL, related_name="scans", editable=False
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

    @property
    def analysis(self) -> Analysis:
        """The stored result read back as the typed `ml.result.Analysis` every page, export and chart reads.

        Empty (no verdict, no faces) until the scan is done. The listing copies of faces and timings stand in
        for a result that lacks them.
        """
        analysis = Analysis.from_json({"faces": self.faces, **self.result}, kind=self.kind)
        if self.timings:
            analysis = replace(analysis, timings=Timings.from_json(self.timings))
        return analysis


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
