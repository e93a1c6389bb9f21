"""Model versions: which trained weights exist, how well they did, and which one scans use."""

from __future__ import annotations

from django.core.files.storage import storages
from django.db import models


def _model_storage():
    return storages["models"]


class ModelVersion(models.Model):
    """One trained image or video model: its weights file, settings, metrics and active flag.

    Exactly one version per kind is active (a partial unique constraint enforces it in the database);
    `training.services.model_version_activate` switches it atomically. `settings` holds what inference
    needs beside the weights (decision threshold, `uncertain` band, crop rule, calibration temperature),
    so a version is reproducible on its own.
    """

    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        VIDEO = "video", "Video"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=80)
    version = models.CharField(max_length=40)
    weights = models.FileField(storage=_model_storage, upload_to="weights/", max_length=255)
    weights_sha256 = models.CharField(max_length=64, blank=True)
    settings = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    training_notes = models.TextField(blank=True)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "name", "version"], name="unique_model_version"),
            models.UniqueConstraint(
                fields=["kind"], condition=models.Q(is_active=True), name="one_active_model_per_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}@{self.version}"

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"
