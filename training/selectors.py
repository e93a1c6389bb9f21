"""Reads on model versions: the active and shadow ones, their shadow results, plots and metric comparisons."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from django.db.models import Avg, Count, F, Func, Q, QuerySet

from training.models import ModelVersion, ShadowResult
from training.shipped import SHIPPED_DIR, read_manifest


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


# --- Evaluation plots and the comparison with the active version (the admin's version page) -------------

# The evaluation plots a version can have, in display order (see ml.plots.save_evaluation_plots).
PLOT_NAMES = ("roc.png", "confusion.png", "pr.png", "training.png")
# Metrics compared side by side, in this order, where both versions have them for the same evaluation data.
COMPARED_METRICS = (
    "n",
    "auc",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "log_loss",
    "ece",
    "uncertain_fraction",
    "false_positive_rate",
)
# For these, smaller is better; for the others, larger is.
LOWER_IS_BETTER = frozenset({"log_loss", "ece", "uncertain_fraction", "false_positive_rate"})


def model_version_plots(model_version: ModelVersion) -> dict[str, Path]:
    """The plots this version has: uploaded ones in model storage, else the shipped ones of its manifest entry."""
    storage = model_version.weights.storage
    found = {}
    for plot_name in PLOT_NAMES:
        stored = model_version.plot_storage_name(plot_name)
        if storage.exists(stored):
            found[plot_name] = Path(storage.path(stored))
    if found:
        return found
    try:
        shipped = read_manifest()
    except (FileNotFoundError, ValueError, KeyError):
        return {}
    is_shipped = any(
        (entry["kind"], entry["name"], entry["version"])
        == (model_version.kind, model_version.name, model_version.version)
        for entry in shipped
    )
    if not is_shipped:
        return {}
    shipped_plots = SHIPPED_DIR / "plots" / model_version.kind
    return {name: shipped_plots / name for name in PLOT_NAMES if (shipped_plots / name).is_file()}


def metric_sections(metrics: dict | None) -> dict[str, dict[str, float]]:
    """The numeric metrics per evaluation ("training", "evaluate:val", ...); flat metrics form the "" section."""
    sections: dict[str, dict[str, float]] = {}
    for key, value in (metrics or {}).items():
        if isinstance(value, dict):
            numbers = {name: number for name, number in value.items() if is_number(number)}
            if numbers:
                sections[key] = numbers
        elif is_number(value):
            sections.setdefault("", {})[key] = value
    return sections


def is_number(value: object) -> bool:
    """A JSON number (a bool is not one, though Python counts it as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class MetricComparison:
    """One metric of one evaluation, for a version and the active one, and whether the change is for the better."""

    section: str
    metric: str
    active: float
    candidate: float

    @property
    def change(self) -> float:
        return self.candidate - self.active

    @property
    def better(self) -> bool | None:
        """None where better or worse does not apply: no change, or the sample size `n`."""
        if self.metric == "n" or self.change == 0:
            return None
        return self.change < 0 if self.metric in LOWER_IS_BETTER else self.change > 0


def model_version_comparison(*, model_version: ModelVersion, active: ModelVersion) -> list[MetricComparison]:
    """Every COMPARED_METRICS figure both versions have on the same evaluation data, evaluation by evaluation."""
    candidate_sections = metric_sections(model_version.metrics)
    active_sections = metric_sections(active.metrics)
    return [
        MetricComparison(
            section=section,
            metric=metric,
            active=active_sections[section][metric],
            candidate=candidate_sections[section][metric],
        )
        for section in sorted(set(candidate_sections) & set(active_sections))
        for metric in COMPARED_METRICS
        if metric in candidate_sections[section] and metric in active_sections[section]
    ]


def previous_active_version(*, kind: str) -> ModelVersion | None:
    """The version of `kind` that was active before the current one: the most recently activated inactive one."""
    return (
        ModelVersion.objects.filter(kind=kind, is_active=False, activated_at__isnull=False)
        .order_by("-activated_at")
        .first()
    )


# Card sections that say what a model gets wrong; a card without one is summarised by its opening paragraphs.
_WEAKNESS_HEADINGS = re.compile(r"limit|weakness|fail|cannot|known|caveat|out of scope", re.IGNORECASE)
_CARD_SUMMARY_CHARS = 700


def model_card_weaknesses(*, model_version: ModelVersion, cards_dir: Path = SHIPPED_DIR) -> str | None:
    """What the version's model card says it gets wrong, as plain text (for the PDF report's limits section).

    The card is `MODEL_CARD_<kind>.md` in `cards_dir` when its title names this version: its opening paragraph
    (where the cards state what the model is and its status), then its sections about limits or failures.
    None where no card describes the version (a version uploaded in the admin).
    """
    path = cards_dir / f"MODEL_CARD_{model_version.kind}.md"
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or model_version.label not in lines[0]:
        return None
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in lines[1:]:
        if line.startswith("## "):
            sections.append((line[3:], []))
        else:
            sections[-1][1].append(line)
    lead = "\n".join(sections[0][1]).strip().split("\n\n")[0].splitlines()
    chosen = [lead, *(body for heading, body in sections if heading and _WEAKNESS_HEADINGS.search(heading))]
    text = " ".join(_plain(line) for body in chosen for line in body if line.strip() and not line.startswith("|"))
    text = " ".join(text.split())
    if len(text) > _CARD_SUMMARY_CHARS:
        text = text[:_CARD_SUMMARY_CHARS].rsplit(" ", 1)[0] + "\u2026"
    return text or None


def _plain(markdown: str) -> str:
    """A Markdown line as text: no emphasis, code marks, heading marks or link targets."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    text = re.sub(r"[*`#>]", "", text)
    return text.strip()
