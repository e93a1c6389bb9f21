"""register_shipped_models: the repository's default models become active versions, idempotently."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from ml.testing import build_tiny_models
from training.models import ModelVersion
from training.services import model_version_register
from training.shipped import SHIPPED_MANIFEST, default_entries, read_manifest

pytestmark = pytest.mark.django_db


def test_it_registers_every_shipped_model_once_and_activates_each_kinds_default() -> None:
    entries = read_manifest()
    defaults = default_entries(entries)
    call_command("register_shipped_models", stdout=io.StringIO())
    call_command("register_shipped_models", stdout=io.StringIO())
    assert ModelVersion.objects.count() == len(entries)
    for entry in entries:
        version = ModelVersion.objects.get(kind=entry["kind"], name=entry["name"], version=entry["version"])
        assert version.is_active == (entry is defaults[entry["kind"]])
        assert version.settings == entry["settings"]
        assert Path(version.weights.path).stat().st_size == (SHIPPED_MANIFEST.parent / entry["weights"]).stat().st_size


def test_keep_active_leaves_a_locally_trained_version_active(tmp_path: Path) -> None:
    image_spec, _video_spec = build_tiny_models(tmp_path)
    local = model_version_register(
        kind="image", name="local", version="1", weights_path=Path(image_spec.weights_path), activate=True
    )
    call_command("register_shipped_models", "--keep-active", stdout=io.StringIO())
    local.refresh_from_db()
    assert local.is_active
    shipped = json.loads(SHIPPED_MANIFEST.read_text())["models"]
    # The local version beside every shipped image version (v1 and v2 are both shipped, for comparison).
    shipped_images = sum(1 for entry in shipped if entry["kind"] == "image")
    assert ModelVersion.objects.filter(kind="image").count() == 1 + shipped_images
    assert {entry["kind"] for entry in shipped} <= set(ModelVersion.objects.values_list("kind", flat=True))


def test_a_new_shipped_default_replaces_an_older_shipped_one_even_with_keep_active(tmp_path: Path) -> None:
    image_spec, _video_spec = build_tiny_models(tmp_path)
    weights = Path(image_spec.weights_path)
    manifest = tmp_path / "manifest.json"
    old_entry = {"kind": "image", "name": "shipped", "version": "1", "weights": weights.name, "settings": {}}
    manifest.write_text(json.dumps({"models": [old_entry]}))
    call_command("register_shipped_models", "--manifest", str(manifest), stdout=io.StringIO())
    new_entry = {**old_entry, "version": "2", "default": True}
    manifest.write_text(json.dumps({"models": [new_entry, old_entry]}))
    call_command("register_shipped_models", "--manifest", str(manifest), "--keep-active", stdout=io.StringIO())
    active = ModelVersion.objects.get(kind="image", is_active=True)
    assert (active.name, active.version) == ("shipped", "2")
    assert ModelVersion.objects.filter(kind="image").count() == 2
