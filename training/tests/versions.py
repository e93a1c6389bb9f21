"""Shadow-mode candidates for tests: inactive versions with the active one's weights, answers adjustable."""

from __future__ import annotations

from pathlib import Path

from training.models import ModelVersion
from training.services import model_version_register


def candidate_version(active: ModelVersion, *, version: str, **settings_overrides: object) -> ModelVersion:
    """An inactive version with the active one's weights; its settings may be changed to change its answers."""
    return model_version_register(
        kind=active.kind,
        name="shadow-candidate",
        version=version,
        weights_path=Path(active.weights.path),
        settings={**active.settings, **settings_overrides},
    )


def forced(probability_sign: int) -> dict:
    """Calibration that ignores the logit: every face comes out (almost) certainly fake (+1) or real (-1)."""
    return {"calibration": {"scale": 0.0, "bias": 20.0 * probability_sign}}
