"""Writes on model versions: register trained weights, activate one per kind, shadow candidates and their results."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from django.core.files import File
from django.db import transaction
from django.utils import timezone

from training.models import ModelVersion, ShadowResult

if TYPE_CHECKING:
    from ml.result import ShadowOutcome


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


@transaction.atomic
def model_version_register(
    *,
    kind: str,
    name: str,
    version: str,
    weights_path: Path,
    settings: dict | None = None,
    metrics: dict | None = None,
    training_notes: str = "",
    activate: bool = False,
) -> ModelVersion:
    """Store a copy of `weights_path` in model storage and record it as a version.

    Registering the same kind/name/version again with identical weights is a no-op (so `make run`
    can call it every time); different weights under an existing version are refused.
    """
    weights_path = Path(weights_path)
    sha256 = _sha256_of(weights_path)
    existing = ModelVersion.objects.filter(kind=kind, name=name, version=version).first()
    if existing is not None:
        if existing.weights_sha256 != sha256:
            raise ValueError(
                f"{kind} model {name}@{version} is already registered with different weights; "
                "register the new weights under a new version"
            )
        model_version = existing
    else:
        model_version = ModelVersion(
            kind=kind,
            name=name,
            version=version,
            weights_sha256=sha256,
            settings=settings or {},
            metrics=metrics or {},
            training_notes=training_notes,
        )
        with weights_path.open("rb") as handle:
            model_version.weights.save(f"{kind}-{name}-{version}{weights_path.suffix}", File(handle), save=False)
        model_version.save()
    if activate:
        model_version = model_version_activate(model_version=model_version)
    return model_version


def model_version_plot_store(*, model_version: ModelVersion, plot_name: str, plot: File) -> None:
    """Store an evaluation plot (PNG) of the version beside its weights, replacing an earlier one of that name."""
    storage = model_version.weights.storage
    storage_name = model_version.plot_storage_name(plot_name)
    if storage.exists(storage_name):
        storage.delete(storage_name)
    storage.save(storage_name, plot)


def evaluation_metrics_key(data: str | Path) -> str:
    """The metrics section of an evaluation on folder `data`: `evaluate:<folder name>` (e.g. `evaluate:val`).

    `ship_model` and `evaluate_model --record` both file evaluations under it, and the admin compares two
    versions section by section, so figures are only ever compared on the same evaluation data.
    """
    return f"evaluate:{Path(data).name}"


@transaction.atomic
def model_version_record_evaluation(*, model_version: ModelVersion, evaluation: dict) -> ModelVersion:
    """Store an `evaluate_model` summary (without its per-file rows) in the version's metrics; returns it.

    The row is locked so that two evaluations recorded at once both land; an earlier evaluation on the same
    folder is replaced.
    """
    locked = ModelVersion.objects.select_for_update().get(pk=model_version.pk)
    summary = {key: value for key, value in evaluation.items() if key != "files"}
    key = evaluation_metrics_key(evaluation.get("name") or evaluation["data"])
    locked.metrics = {**(locked.metrics or {}), key: summary}
    locked.save(update_fields=["metrics"])
    return locked


@transaction.atomic
def model_version_activate(*, model_version: ModelVersion) -> ModelVersion:
    """Make `model_version` the one active version of its kind (deactivating the previous one).

    A shadow candidate that is activated leaves shadow mode: it now gives the verdicts it was compared against.
    """
    # Lock every row of the kind so two concurrent activations cannot both win.
    list(ModelVersion.objects.select_for_update().filter(kind=model_version.kind))
    ModelVersion.objects.filter(kind=model_version.kind, is_active=True).exclude(pk=model_version.pk).update(
        is_active=False
    )
    ModelVersion.objects.filter(pk=model_version.pk).update(
        is_active=True, activated_at=timezone.now(), is_shadow=False, shadow_since=None
    )
    model_version.refresh_from_db()
    return model_version


class ShadowRefused(ValueError):
    """The version cannot be a shadow candidate (it is the active one)."""


@transaction.atomic
def model_version_shadow_start(*, model_version: ModelVersion) -> ModelVersion:
    """Make `model_version` the shadow candidate of its kind, replacing the previous candidate of that kind.

    From now on every new scan of the kind is also scored by it (after the scan's own result is stored).
    The active version cannot be its own shadow: there would be nothing to compare.
    """
    list(ModelVersion.objects.select_for_update().filter(kind=model_version.kind))
    model_version.refresh_from_db()
    if model_version.is_active:
        raise ShadowRefused(f"{model_version} is the active {model_version.kind} model; shadow an inactive one.")
    if model_version.is_shadow:
        return model_version
    ModelVersion.objects.filter(kind=model_version.kind, is_shadow=True).update(is_shadow=False, shadow_since=None)
    ModelVersion.objects.filter(pk=model_version.pk).update(is_shadow=True, shadow_since=timezone.now())
    model_version.refresh_from_db()
    return model_version


@transaction.atomic
def model_version_shadow_stop(*, kind: str) -> ModelVersion | None:
    """End shadow mode for `kind`; returns the version that was the candidate (its results are kept)."""
    candidate = ModelVersion.objects.select_for_update().filter(kind=kind, is_shadow=True).first()
    if candidate is None:
        return None
    ModelVersion.objects.filter(pk=candidate.pk).update(is_shadow=False, shadow_since=None)
    candidate.refresh_from_db()
    return candidate


def shadow_result_record(
    *,
    scan_id: object,
    candidate: ModelVersion,
    reference: ModelVersion | None,
    kind: str,
    reference_verdict: str,
    reference_probability: float | None,
    outcome: ShadowOutcome | None = None,
    error: str = "",
) -> ShadowResult:
    """Store what `candidate` concluded about a scan (`outcome` from `ml.shadow.ShadowScorer.score`), or why it
    could not (`error`). A second record for the same scan and candidate is ignored: the first one stands."""
    if (outcome is None) == (not error):
        raise ValueError("give either the shadow outcome or the error, not both or neither")
    fields: dict[str, object] = {
        "reference": reference,
        "kind": kind,
        "reference_verdict": reference_verdict,
        "reference_probability": reference_probability,
    }
    if outcome is not None:
        fields.update(
            verdict=outcome.verdict,
            fake_probability=None if outcome.fake_probability is None else float(outcome.fake_probability),
            agreed=outcome.verdict == reference_verdict,
            faces_scored=len(outcome.faces),
            timings=dict(outcome.timings),
        )
    else:
        fields.update(error=error[:2000])
    shadow_result, _created = ShadowResult.objects.get_or_create(scan_id=scan_id, candidate=candidate, defaults=fields)
    return shadow_result
