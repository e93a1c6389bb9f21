"""Reviewer labels as evaluation data: which scans people confirmed fake or real, how each model version scored
them (as the version users saw, or as a shadow candidate), and the figures that makes.

A scan counts with its current label only, and only when it is `confirmed_fake` (1) or `confirmed_real` (0):
a disputed scan is no ground truth.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db.models import OuterRef, QuerySet, Subquery

from ml.metrics import confusion, roc_auc
from newsroom.models import ScanReview
from scans.models import Scan
from training.models import ModelVersion, ShadowResult

REVIEWED_SECTION = "reviewed scans"
GROUND_TRUTH = {ScanReview.Label.CONFIRMED_FAKE: 1, ScanReview.Label.CONFIRMED_REAL: 0}


@dataclass(frozen=True)
class ReviewedSample:
    """One labelled scan as one version scored it."""

    scan_id: object
    label: int
    fake_probability: float
    shadow: bool


def reviewed_scans(*, kind: str | None = None) -> QuerySet[Scan]:
    """Finished scans whose current label is confirmed fake or confirmed real, each carrying it as `review_label`."""
    current = ScanReview.objects.filter(scan=OuterRef("pk")).order_by("-created_at", "-id").values("label")[:1]
    scans = Scan.objects.filter(status=Scan.Status.DONE).annotate(review_label=Subquery(current))
    scans = scans.filter(review_label__in=list(GROUND_TRUTH))
    return scans.filter(kind=kind) if kind else scans


def reviewed_samples(*, model_version: ModelVersion) -> Iterator[ReviewedSample]:
    """Every labelled scan the version scored: as the version the scan used (images: the image version of photo
    scans; videos: the video version of video scans), and as a shadow candidate."""
    served = reviewed_scans(kind=model_version.kind).filter(fake_probability__isnull=False)
    version_field = "image_model_version" if model_version.kind == ModelVersion.Kind.IMAGE else "video_model_version"
    for scan_id, label, probability in served.filter(**{version_field: model_version}).values_list(
        "pk", "review_label", "fake_probability"
    ):
        yield ReviewedSample(scan_id=scan_id, label=GROUND_TRUTH[label], fake_probability=probability, shadow=False)
    labelled = reviewed_scans(kind=model_version.kind).filter(pk=OuterRef("scan_id")).values("review_label")[:1]
    shadow_runs = (
        ShadowResult.objects.filter(candidate=model_version, fake_probability__isnull=False)
        .annotate(review_label=Subquery(labelled))
        .filter(review_label__isnull=False)
    )
    for scan_id, label, probability in shadow_runs.values_list("scan_id", "review_label", "fake_probability"):
        yield ReviewedSample(scan_id=scan_id, label=GROUND_TRUTH[label], fake_probability=probability, shadow=True)


def reviewed_scan_metrics(*, model_version: ModelVersion) -> dict[str, Any]:
    """n, ROC-AUC (None with one class only), accuracy and false-positive rate at the version's threshold, on every
    labelled scan it scored; `from_shadow` says how many of them it scored as a shadow candidate."""
    samples = list(reviewed_samples(model_version=model_version))
    labels = np.array([sample.label for sample in samples], dtype=int)
    scores = np.array([sample.fake_probability for sample in samples], dtype=float)
    threshold = float((model_version.settings or {}).get("threshold", 0.5))
    figures: dict[str, Any] = {
        "n": len(samples),
        "n_fake": int(labels.sum()),
        "n_real": int(len(samples) - labels.sum()),
        "from_shadow": sum(1 for sample in samples if sample.shadow),
        "threshold": threshold,
        "auc": None,
        "accuracy": None,
        "false_positive_rate": None,
    }
    if not samples:
        return figures
    counts = confusion(labels, scores, threshold)
    figures["auc"] = roc_auc(labels, scores)
    figures["accuracy"] = (counts["tp"] + counts["tn"]) / len(samples)
    real = counts["fp"] + counts["tn"]
    figures["false_positive_rate"] = counts["fp"] / real if real else None
    return figures
