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
    # Shadow mode (scans.shadow): this inactive version also scores every new scan of its kind, for the admin's
    # agreement report only. At most one per kind, never the active one; set through training.services.
    is_shadow = models.BooleanField(default=False)
    shadow_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "name", "version"], name="unique_model_version"),
            models.UniqueConstraint(
                fields=["kind"], condition=models.Q(is_active=True), name="one_active_model_per_kind"
            ),
            models.UniqueConstraint(
                fields=["kind"], condition=models.Q(is_shadow=True), name="one_shadow_model_per_kind"
            ),
            models.CheckConstraint(
                condition=~(models.Q(is_active=True) & models.Q(is_shadow=True)), name="shadow_model_is_not_active"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}@{self.version}"

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    def plot_storage_name(self, plot_name: str) -> str:
        """Where an uploaded evaluation plot of this version lives in model storage, beside the weights."""
        return f"plots/{self.kind}-{self.name}-{self.version}/{plot_name}"


class ShadowResult(models.Model):
    """What a shadow candidate concluded about one scan, beside the verdict the scan's owner was shown.

    Written by the worker after the scan's own result is stored (scans.shadow); read only by the admin's
    agreement report. Users never see these rows: no API, page, export or webhook reads this model. A failed
    shadow run is kept too (`error` set, no verdict), so the report can say how often the candidate failed.
    """

    scan = models.ForeignKey("scans.Scan", on_delete=models.CASCADE, related_name="+")
    candidate = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="shadow_results")
    # The version whose verdict the owner saw (the scan's image or video version); null if it was deleted since.
    reference = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=8, choices=ModelVersion.Kind.choices)
    reference_verdict = models.CharField(max_length=12)
    reference_probability = models.FloatField(null=True, blank=True)
    verdict = models.CharField(max_length=12, blank=True)
    fake_probability = models.FloatField(null=True, blank=True)
    # Null when the shadow run failed; else whether the candidate's verdict equals the reference verdict.
    agreed = models.BooleanField(null=True)
    faces_scored = models.PositiveIntegerField(default=0)
    timings = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["scan", "candidate"], name="one_shadow_result_per_candidate")]
        indexes = [models.Index(fields=["candidate", "-created_at"], name="shadow_result_recent")]

    def __str__(self) -> str:
        outcome = "failed" if self.agreed is None else ("agreed" if self.agreed else "disagreed")
        return f"shadow {self.candidate_id} on scan {self.scan_id}: {outcome}"

    @property
    def probability_change(self) -> float | None:
        """The candidate's fake probability minus the reference's, where both scored the faces."""
        if self.fake_probability is None or self.reference_probability is None:
            return None
        return self.fake_probability - self.reference_probability
