"""Turning registered model versions (or a training run folder) into `ml.pipeline.ModelSpec`s for the commands."""

from __future__ import annotations

import json
from pathlib import Path

from ml.pipeline import ModelSpec
from training.models import ModelVersion


def spec_from_version(model_version: ModelVersion) -> ModelSpec:
    """The spec of a registered version (weights read from model storage)."""
    return ModelSpec(
        weights_path=model_version.weights.path, settings=dict(model_version.settings), label=model_version.label
    )


def find_version(*, kind: str, version: str | None) -> ModelVersion:
    """The version of `kind` named `version` ("1.0.0" or "name@1.0.0"), or the active one when None.

    Raises ModelVersion.DoesNotExist with a readable message when there is no match.
    """
    versions = ModelVersion.objects.filter(kind=kind)
    if version is None:
        found = versions.filter(is_active=True).first()
        if found is None:
            raise ModelVersion.DoesNotExist(
                f"no active {kind} model; run `manage.py register_shipped_models` or pass --version"
            )
        return found
    if "@" in version:
        name, number = version.split("@", 1)
        versions = versions.filter(name=name, version=number)
    else:
        versions = versions.filter(version=version)
    found = versions.order_by("-created_at").first()
    if found is None:
        raise ModelVersion.DoesNotExist(f"no {kind} model version {version!r} is registered")
    return found


def spec_from_run(run_dir: Path, *, kind: str) -> ModelSpec:
    """The spec of an unregistered training run folder (weights file + metrics.json written by training)."""
    weights = run_dir / f"{kind}_model.keras"
    metrics_path = run_dir / "metrics.json"
    if not weights.is_file() or not metrics_path.is_file():
        raise FileNotFoundError(f"{run_dir} has no {weights.name} and metrics.json from a {kind} training run")
    settings = json.loads(metrics_path.read_text())["settings"]
    return ModelSpec(weights_path=str(weights), settings=settings, label=f"run:{run_dir.name}")
