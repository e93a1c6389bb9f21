"""The video model's frame aggregates, its optional sequence head, and the held-out choice between them."""

from __future__ import annotations

import numpy as np
import pytest

from ml.errors import ModelError
from ml.metrics import sigmoid
from ml.train_video_crossfit import aggregate_options, held_out_platt
from ml.video_model import VideoModel, aggregate_frames, bundle_video_model, share_over, top_quarter_mean


def test_the_aggregates_read_the_calibrated_frame_logits_as_their_names_say() -> None:
    logits = np.array([-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 9.0])
    assert aggregate_frames(logits, {"method": "mean_logit"}) == pytest.approx(0.25)
    assert aggregate_frames(logits, {"method": "trimmed_mean_logit", "trim": 0.25}) == pytest.approx(-0.5)
    assert top_quarter_mean(logits) == pytest.approx(5.5)
    # N of M: 3 of 8 frames at or over the cut.
    assert share_over(logits, 1.0) == pytest.approx(3 / 8)
    assert aggregate_frames(logits, {"method": "share_over_threshold", "frame_logit_cut": 1.0}) == pytest.approx(3 / 8)
    with pytest.raises(ModelError, match="unknown frame aggregate"):
        aggregate_frames(logits, {"method": "median"})


def test_n_of_m_compares_frames_with_the_image_models_threshold() -> None:
    options = aggregate_options("share_over_threshold", {"threshold": 0.8})
    assert options["frame_logit_cut"] == pytest.approx(np.log(0.8 / 0.2), abs=1e-6)


def test_held_out_platt_never_calibrates_a_group_on_itself() -> None:
    # Group "b" is labelled against its scores; fitted on itself it would be calibrated confidently right.
    scores = np.array([-3.0, -2.0, 2.0, 3.0, -3.0, 3.0])
    labels = np.array([0, 0, 1, 1, 1, 0])
    groups = np.array(["a", "a", "a", "a", "b", "b"])
    probabilities = held_out_platt(scores, labels, groups)
    assert probabilities[4] < 0.5 < probabilities[5]


def _frame_encoder(embedding_dim: int = 4):
    import keras

    face = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(face)
    return keras.Model(face, [keras.layers.Dense(embedding_dim)(pooled), keras.layers.Dense(1)(pooled)])


def test_an_aggregate_only_version_needs_no_sequence_head_and_answers_the_calibrated_aggregate() -> None:
    settings = {
        "crop_rule": {"margin": 0.15, "size": 8},
        "frame_calibration": {"scale": 2.0, "bias": 0.0},
        "aggregate": {"method": "mean_logit"},
        "aggregate_calibration": {"scale": 0.5, "bias": 1.0},
        "combine": {"sequence_weight": 0.0, "scale": 1.0, "bias": 0.0},
    }
    model = VideoModel.from_bundle(bundle_video_model(_frame_encoder()), settings)
    score = model.score_track(np.zeros((3, 4), np.float32), np.array([1.0, 2.0, 3.0]))
    # mean of 2 * logits = 4; 0.5 * 4 + 1 = 3
    assert score.aggregate_probability == pytest.approx(float(sigmoid(3.0)))
    assert score.fake_probability == pytest.approx(score.aggregate_probability)
    assert score.sequence_probability is None


def test_a_version_that_weighs_a_missing_sequence_head_is_refused() -> None:
    settings = {"crop_rule": {"margin": 0.15, "size": 8}, "combine": {"sequence_weight": 0.5}}
    with pytest.raises(ModelError, match="sequence head"):
        VideoModel.from_bundle(bundle_video_model(_frame_encoder()), settings)


def _image_model_and_aggregate_only_video(tmp_path, *, seed: int = 0):
    """A tiny image model, and an aggregate-only video version whose frame encoder is a copy of it."""
    from ml.image_model import MANIPULATION_TYPES, ImageModel, build_image_model, feature_model, weights_digest
    from ml.testing import tiny_image_settings, tiny_video_settings

    tmp_path.mkdir(parents=True, exist_ok=True)
    classifier = build_image_model(
        input_size=48, embedding_dim=8, widths=(4, 8), manipulation_types=MANIPULATION_TYPES, seed=seed
    )
    image_path = tmp_path / f"image-{seed}.keras"
    classifier.save(image_path)
    video_path = tmp_path / "video.keras"
    bundle_video_model(feature_model(classifier)).save(video_path)
    settings = {
        **tiny_video_settings(),
        "combine": {"method": "aggregate only", "sequence_weight": 0.0, "scale": 1.0, "bias": 0.0},
        "frame_encoder_digest": weights_digest(feature_model(classifier)),
    }
    return ImageModel.load(image_path, tiny_image_settings()), video_path, settings


def test_a_video_version_built_on_the_loaded_image_model_uses_that_network_and_answers_the_same(tmp_path) -> None:
    image_model, video_path, settings = _image_model_and_aggregate_only_video(tmp_path)
    shared = VideoModel.load(video_path, settings, image_model=image_model)
    from_file = VideoModel.load(video_path, settings)
    assert shared.frame_encoder is image_model.features
    assert from_file.frame_encoder is not image_model.features
    crops = np.random.default_rng(0).integers(0, 256, (5, 48, 48, 3)).astype(np.uint8)
    expected, got = from_file.predict_frames(crops), shared.predict_frames(crops)
    np.testing.assert_allclose(got.logits, expected.logits, atol=1e-6)
    np.testing.assert_allclose(got.embeddings, expected.embeddings, atol=1e-6)
    np.testing.assert_allclose(got.manipulation, expected.manipulation, atol=1e-6)


def test_the_video_file_is_loaded_when_its_frame_encoder_is_another_network_or_a_sequence_head_weighs_in(
    tmp_path,
) -> None:
    other_image_model, _path, _settings = _image_model_and_aggregate_only_video(tmp_path / "other", seed=1)
    image_model, video_path, settings = _image_model_and_aggregate_only_video(tmp_path)
    assert VideoModel.load(video_path, settings, image_model=other_image_model).frame_encoder is not (
        other_image_model.features
    )
    no_digest = {key: value for key, value in settings.items() if key != "frame_encoder_digest"}
    assert VideoModel.load(video_path, no_digest, image_model=image_model).frame_encoder is not image_model.features
    weighted = {**settings, "combine": {"sequence_weight": 0.5}}
    with pytest.raises(ModelError, match="sequence head"):
        VideoModel.load(video_path, weighted, image_model=image_model)


def test_a_shared_frame_encoder_still_needs_the_versions_file(tmp_path) -> None:
    image_model, video_path, settings = _image_model_and_aggregate_only_video(tmp_path)
    video_path.unlink()
    with pytest.raises(ModelError, match="not found"):
        VideoModel.load(video_path, settings, image_model=image_model)
