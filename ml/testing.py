"""Tiny untrained models with valid settings, for tests of code that only needs *a* model (the platform's)."""

from __future__ import annotations

from pathlib import Path

from ml.faces import CropRule
from ml.image_model import MANIPULATION_TYPES
from ml.pipeline import ModelSpec

TINY_CROP_RULE = CropRule(margin=0.15, size=48)


def tiny_image_settings(manipulation_types: tuple[str, ...] = MANIPULATION_TYPES) -> dict:
    """Settings shaped like the training command's, for the tiny image model."""
    return {
        "crop_rule": TINY_CROP_RULE.to_dict(),
        "input_size": TINY_CROP_RULE.size,
        "embedding_dim": 8,
        "manipulation_types": list(manipulation_types),
        "calibration": {"method": "platt", "scale": 1.0, "bias": 0.0, "fitted_on": "none (untrained test model)"},
        "detector": {"detect_max_side": 640, "min_confidence": 0.9, "min_face_size": 20},
        "threshold": 0.5,
        "uncertain_low": 0.35,
        "uncertain_high": 0.65,
    }


def tiny_video_settings(manipulation_types: tuple[str, ...] = MANIPULATION_TYPES) -> dict:
    """Settings shaped like the video training command's, for the tiny video model."""
    image_settings = tiny_image_settings(manipulation_types)
    return {
        "crop_rule": image_settings["crop_rule"],
        "manipulation_types": image_settings["manipulation_types"],
        "frame_calibration": {"scale": 1.0, "bias": 0.0},
        "sequence_calibration": {"scale": 1.0, "bias": 0.0},
        "clip_len": 4,
        "clip_stride": 2,
        "aggregate": {"method": "trimmed_mean_logit", "trim": 0.2},
        "combine": {"method": "logit_weighted", "sequence_weight": 0.5},
        "threshold": 0.5,
        "uncertain_low": 0.35,
        "uncertain_high": 0.65,
    }


def build_tiny_models(
    directory: Path, *, manipulation_types: tuple[str, ...] = MANIPULATION_TYPES
) -> tuple[ModelSpec, ModelSpec]:
    """A tiny untrained image model and video model saved under `directory`, with valid settings.

    Their answers are meaningless (random weights) but have the real shape, so the platform's jobs, API and
    pages can be tested end to end in a second or two. With `manipulation_types=()` they have no
    manipulation-type head, like the shipped v1 models.
    """
    from ml.image_model import build_image_model, feature_model
    from ml.video_model import build_sequence_head, bundle_video_model, sequence_features

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    classifier = build_image_model(
        input_size=TINY_CROP_RULE.size, embedding_dim=8, widths=(4, 8), manipulation_types=manipulation_types, seed=0
    )
    image_path = directory / "tiny_image.keras"
    classifier.save(image_path)
    feature_dim = sequence_features([[0.0] * 8], [0.0]).shape[1]
    head = build_sequence_head(feature_dim=feature_dim, units=4, seed=0)
    video_path = directory / "tiny_video.keras"
    bundle_video_model(feature_model(classifier), head).save(video_path)
    # A version of its own without the head, so both kinds can be registered side by side.
    version = "test" if manipulation_types else "test-no-head"
    return (
        ModelSpec(str(image_path), tiny_image_settings(manipulation_types), label=f"tiny-image@{version}"),
        ModelSpec(str(video_path), tiny_video_settings(manipulation_types), label=f"tiny-video@{version}"),
    )
