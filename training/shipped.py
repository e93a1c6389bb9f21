"""The default models that ship in the repository (ml/weights/manifest.json) and their registration."""

from __future__ import annotations

import json
from pathlib import Path

from django.db import transaction

from training.models import ModelVersion
from training.services import model_version_activate, model_version_register

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "ml" / "weights"
SHIPPED_MANIFEST = SHIPPED_DIR / "manifest.json"


def read_manifest(manifest_path: Path = SHIPPED_MANIFEST) -> list[dict]:
    """The manifest's model entries (kind, name, version, weights, settings, metrics, training_notes)."""
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} is missing: no shipped models to register")
    entries = json.loads(manifest_path.read_text())["models"]
    for entry in entries:
        missing = {"kind", "name", "version", "weights", "settings"} - set(entry)
        if missing:
            raise ValueError(f"manifest entry {entry.get('name')!r} lacks {', '.join(sorted(missing))}")
    return entries


@transaction.atomic
def register_shipped_models(*, manifest_path: Path = SHIPPED_MANIFEST, keep_active: bool = False) -> list[ModelVersion]:
    """Register every shipped model (idempotently) and activate it.

    With `keep_active`, a kind that already has an active version keeps it; the shipped one is only registered.
    """
    registered = []
    for entry in read_manifest(manifest_path):
        weights_path = manifest_path.parent / entry["weights"]
        model_version = model_version_register(
            kind=entry["kind"],
            name=entry["name"],
            version=entry["version"],
            weights_path=weights_path,
            settings=entry["settings"],
            metrics=entry.get("metrics") or {},
            training_notes=entry.get("training_notes", ""),
        )
        already_active = ModelVersion.objects.filter(kind=entry["kind"], is_active=True).exists()
        if not (keep_active and already_active):
            model_version = model_version_activate(model_version=model_version)
        registered.append(model_version)
    return registered
