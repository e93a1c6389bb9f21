"""Writes on model versions: register trained weights, activate one per kind."""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.core.files import File
from django.db import transaction
from django.utils import timezone

from training.models import ModelVersion


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


@transaction.atomic
def model_version_activate(*, model_version: ModelVersion) -> ModelVersion:
    """Make `model_version` the one active version of its kind (deactivating the previous one)."""
    # Lock every row of the kind so two concurrent activations cannot both win.
    list(ModelVersion.objects.select_for_update().filter(kind=model_version.kind))
    ModelVersion.objects.filter(kind=model_version.kind, is_active=True).exclude(pk=model_version.pk).update(
        is_active=False
    )
    ModelVersion.objects.filter(pk=model_version.pk).update(is_active=True, activated_at=timezone.now())
    model_version.refresh_from_db()
    return model_version
