"""The default models that ship in the repository (ml/weights/manifest.json) and their registration."""

from __future__ import annotations

import json
from pathlib import Path

from django.db import transaction

from training.models import ModelVersion
from training.services import model_version_activate, model_version_register

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "ml" / "weights"
SHIPPED_MANIFEST = SHIPPED_DIR / "manifest.json"


def shipped_weights_name(kind: str, name: str, version: str) -> str:
    """The file name `ship_model` gives a version's weights in ml/weights/."""
    return f"{kind}-{name}-{version}.keras"


def shipped_frame_scores_name(weights_name: str) -> str:
    """The out-of-fold frame scores shipped beside a version's weights (image versions with a video stage)."""
    return f"{Path(weights_name).stem}-oof-frames.npz"


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


def default_entries(entries: list[dict]) -> dict[str, dict]:
    """The entry each kind activates: the one marked `"default": true`, else the kind's last entry."""
    defaults: dict[str, dict] = {}
    for entry in entries:
        if entry.get("default") or entry["kind"] not in defaults or not defaults[entry["kind"]].get("default"):
            defaults[entry["kind"]] = entry
    return defaults


@transaction.atomic
def register_shipped_models(*, manifest_path: Path = SHIPPED_MANIFEST, keep_active: bool = False) -> list[ModelVersion]:
    """Register every shipped model (idempotently) and activate each kind's default one.

    Earlier shipped versions stay registered, so the admin can compare and roll back to them. With
    `keep_active`, a kind whose active version is not a shipped one (trained or uploaded here) keeps it; a kind
    on an older shipped version moves to the new default.
    """
    entries = read_manifest(manifest_path)
    shipped_labels = {(entry["kind"], entry["name"], entry["version"]) for entry in entries}
    registered = {}
    for entry in entries:
        weights_path = manifest_path.parent / entry["weights"]
        registered[(entry["kind"], entry["name"], entry["version"])] = model_version_register(
            kind=entry["kind"],
            name=entry["name"],
            version=entry["version"],
            weights_path=weights_path,
            settings=entry["settings"],
            metrics=entry.get("metrics") or {},
            training_notes=entry.get("training_notes", ""),
        )
    for kind, entry in default_entries(entries).items():
        active = ModelVersion.objects.filter(kind=kind, is_active=True).first()
        locally_chosen = active is not None and (active.kind, active.name, active.version) not in shipped_labels
        if keep_active and locally_chosen:
            continue
        key = (kind, entry["name"], entry["version"])
        registered[key] = model_version_activate(model_version=registered[key])
    for model_version in registered.values():
        model_version.refresh_from_db()  # activation changed other rows of its kind
    return list(registered.values())
