"""Test-time flipping: a version with `test_time_flip` scores each face as the mean of it and its mirror image,
the same way in the eager reference, the compiled scorers, the video model's frames, Grad-CAM and the recipe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ml.image_model import ImageModel, build_image_model, encode_in_batches
from ml.inference import FrameScorer, ImageScorer
from ml.testing import TINY_CROP_RULE, tiny_image_settings, tiny_video_settings
from ml.video_model import VideoModel


@pytest.fixture(scope="module")
def tiny_classifier():
    return build_image_model(input_size=TINY_CROP_RULE.size, embedding_dim=8, widths=(4, 8), seed=3)


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    # Not symmetric left to right, so a crop and its mirror really are two different inputs.
    return np.random.default_rng(0).integers(0, 256, (5, TINY_CROP_RULE.size, TINY_CROP_RULE.size, 3), np.uint8)


def _flipping(settings: dict) -> dict:
    return {**settings, "test_time_flip": True}


def test_encode_in_batches_with_mirror_averages_each_crop_with_its_mirror_across_batches() -> None:
    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, (7, 4, 6, 3)).astype(np.uint8)
    weights = rng.normal(size=(4 * 6 * 3,))

    def forward(batch: np.ndarray):
        flat = batch.reshape(len(batch), -1)
        logit = flat @ weights
        return flat[:, :2], logit[:, None], np.stack([logit, -logit], axis=1)

    embeddings, logits, kinds = encode_in_batches(forward, crops, embedding_dim=2, batch_size=4, mirror=True)
    _, as_is, _ = encode_in_batches(forward, crops, embedding_dim=2, batch_size=4)
    _, mirrored, _ = encode_in_batches(forward, crops[:, :, ::-1], embedding_dim=2, batch_size=4)

    np.testing.assert_allclose(logits, (as_is + mirrored) / 2)
    np.testing.assert_allclose(kinds[:, 0], logits)
    as_is_embeddings = crops.reshape(7, -1)[:, :2].astype(float)
    mirrored_embeddings = crops[:, :, ::-1].reshape(7, -1)[:, :2].astype(float)
    np.testing.assert_allclose(embeddings, (as_is_embeddings + mirrored_embeddings) / 2)


def test_a_flipping_version_gives_a_face_and_its_mirror_the_same_score(tiny_classifier, crops: np.ndarray) -> None:
    flipping = ImageModel(tiny_classifier, _flipping(tiny_image_settings(())))
    plain = ImageModel(tiny_classifier, tiny_image_settings(()))

    np.testing.assert_allclose(flipping.predict(crops).logits, flipping.predict(crops[:, :, ::-1]).logits, atol=1e-5)
    assert not np.allclose(plain.predict(crops).logits, plain.predict(crops[:, :, ::-1]).logits, atol=1e-5)
    np.testing.assert_allclose(
        flipping.predict(crops).logits,
        (plain.predict(crops).logits + plain.predict(crops[:, :, ::-1]).logits) / 2,
        atol=1e-5,
    )


def test_a_version_without_the_setting_scores_each_face_once_as_before(tiny_classifier) -> None:
    assert ImageModel(tiny_classifier, tiny_image_settings(())).test_time_flip is False


def test_the_compiled_scorers_flip_as_the_eager_reference_does(tiny_classifier, crops: np.ndarray) -> None:
    image_model = ImageModel(tiny_classifier, _flipping(tiny_image_settings(())))
    video_settings = {**_flipping(tiny_video_settings(())), "combine": {"sequence_weight": 0.0}}
    video_model = VideoModel(image_model.features, video_settings)

    eager = image_model.predict(crops)
    compiled = ImageScorer(image_model).predict(crops)
    frames = FrameScorer(video_model).predict(crops)

    np.testing.assert_allclose(compiled.logits, eager.logits, atol=1e-5)
    np.testing.assert_allclose(compiled.embeddings, eager.embeddings, atol=1e-5)
    np.testing.assert_allclose(video_model.predict_frames(crops).logits, eager.logits, atol=1e-5)
    np.testing.assert_allclose(frames.logits, eager.logits, atol=1e-5)


def test_the_heatmap_of_a_flipping_version_explains_both_views(tiny_classifier, crops: np.ndarray) -> None:
    from ml.gradcam import gradcam_heatmaps

    as_is = gradcam_heatmaps(tiny_classifier, crops, mirror=True)
    of_mirror = gradcam_heatmaps(tiny_classifier, crops[:, :, ::-1], mirror=True)

    np.testing.assert_allclose(of_mirror, as_is[:, :, ::-1], atol=1e-4)


def test_the_video_recipe_copies_the_image_runs_flip_into_the_video_version(tmp_path: Path) -> None:
    from ml.train_video_crossfit import _settings

    (tmp_path / "image_model.keras").write_bytes(b"weights")
    for flip in (True, False):
        settings = _settings(
            image_run=tmp_path,
            image_settings={**tiny_image_settings(), "test_time_flip": flip},
            chosen="mean_logit",
            best_aggregate="mean_logit",
            raw={"mean_logit": np.array([-1.0, 1.0, -0.5, 0.5])},
            labels=np.array([0, 1, 0, 1]),
            frames=32,
            threshold=0.5,
            band=(0.3, 0.7),
        )
        assert settings["test_time_flip"] is flip


def test_switching_the_flip_of_a_run_that_trained_on_video_frames_is_refused(tmp_path: Path) -> None:
    from ml.train_sources import recalibrate_image_run

    (tmp_path / "metrics.json").write_text(json.dumps({"metrics": {"config": {"stage2_steps": 500}}}))

    with pytest.raises(ValueError, match="trained on video frames"):
        recalibrate_image_run(tmp_path, cache_root=tmp_path, data_dir=tmp_path, test_time_flip=True)
