"""Reads on model versions."""

from __future__ import annotations

from training.models import ModelVersion


def model_version_active(*, kind: str) -> ModelVersion | None:
    """The active version of `kind`, or None when none has been registered yet."""
    return ModelVersion.objects.filter(kind=kind, is_active=True).first()
