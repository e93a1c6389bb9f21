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
from training.shipped import SHIPPED_MANIFEST, read_manifest

pytestmark = pytest.mark.django_db


def test_it_registers_and_activates_every_shipped_model_once() -> None:
    entries = read_manifest()
    call_command("register_shipped_models", stdout=io.StringIO())
    call_command("register_shipped_models", stdout=io.StringIO())
    assert ModelVersion.objects.count() == len(entries)
    for entry in entries:
        version = ModelVersion.objects.get(kind=entry["kind"], name=entry["name"], version=entry["version"])
        assert version.is_active
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
    assert ModelVersion.objects.filter(kind="image").count() == 2
    assert {entry["kind"] for entry in shipped} <= set(ModelVersion.objects.values_list("kind", flat=True))
