"""Reads on model versions and their shadow results."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.db.models import Avg, Count, F, Func, Q, QuerySet

from training.models import ModelVersion, ShadowResult


def model_version_active(*, kind: str) -> ModelVersion | None:
    """The active version of `kind`, or None when none has been registered yet."""
    return ModelVersion.objects.filter(kind=kind, is_active=True).first()


def model_version_shadow(*, kind: str) -> ModelVersion | None:
    """The shadow candidate of `kind`, or None when shadow mode is off for that kind."""
    return ModelVersion.objects.filter(kind=kind, is_shadow=True).first()


@dataclass(frozen=True)
class ShadowAgreement:
    """How a shadow candidate's verdicts compare with the verdicts users were shown, over its scored scans."""

    scored: int
    failed: int
    agreed: int
    mean_abs_probability_change: float | None
    # (reference verdict, candidate verdict) -> number of scans.
    verdict_pairs: Counter = field(default_factory=Counter)

    @property
    def agreement(self) -> float | None:
        """The fraction of scored scans where both gave the same verdict; None before any was scored."""
        return self.agreed / self.scored if self.scored else None


def shadow_agreement(*, candidate: ModelVersion) -> ShadowAgreement:
    """Agreement of `candidate` with the versions users saw, over every scan it shadowed."""
    results = ShadowResult.objects.filter(candidate=candidate)
    counts = results.aggregate(
        scored=Count("pk", filter=Q(agreed__isnull=False)),
        failed=Count("pk", filter=Q(agreed__isnull=True)),
        agreed=Count("pk", filter=Q(agreed=True)),
        mean_abs_change=Avg(
            Func(F("fake_probability") - F("reference_probability"), function="ABS"),
            filter=Q(fake_probability__isnull=False, reference_probability__isnull=False),
        ),
    )
    pairs = Counter(
        {
            (row["reference_verdict"], row["verdict"]): row["n"]
            for row in results.filter(agreed__isnull=False)
            .values("reference_verdict", "verdict")
            .annotate(n=Count("pk"))
            .order_by()
        }
    )
    return ShadowAgreement(
        scored=counts["scored"],
        failed=counts["failed"],
        agreed=counts["agreed"],
        mean_abs_probability_change=counts["mean_abs_change"],
        verdict_pairs=pairs,
    )


def shadow_disagreements(*, candidate: ModelVersion) -> QuerySet[ShadowResult]:
    """The scans where `candidate` gave another verdict than the one shown, newest first."""
    return ShadowResult.objects.filter(candidate=candidate, agreed=False).select_related("scan").order_by("-created_at")
