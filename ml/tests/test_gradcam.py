"""Grad-CAM over the image model: the right layer, the right shape, heat where the logit's evidence is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.gradcam import find_last_spatial_layer, gradcam_heatmaps, overlay_heatmap


def _brightness_model(sign: float):
    """A model whose logit is `sign` times the mean brightness: a bright region is all its evidence."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(16, 16, 3))
    features = layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones", name="brightness")(inputs)
    pooled = layers.GlobalAveragePooling2D()(features)
    logit = layers.Dense(1, use_bias=False, kernel_initializer=keras.initializers.Constant(sign), name="logit")(pooled)
    return keras.Model(inputs, logit)


def _top_left_patch() -> np.ndarray:
    crops = np.zeros((1, 16, 16, 3), dtype=np.float32)
    crops[0, :8, :8] = 200.0
    return crops


@pytest.fixture(scope="module")
def tiny_image_model(tmp_path_factory: pytest.TempPathFactory):
    from ml.image_model import ImageModel
    from ml.testing import build_tiny_models

    image_spec, _video_spec = build_tiny_models(Path(tmp_path_factory.mktemp("gradcam-models")))
    return ImageModel.load(image_spec.weights_path, image_spec.settings)


def test_it_explains_the_last_spatial_layer_of_the_image_model(tiny_image_model):
    name = find_last_spatial_layer(tiny_image_model.classifier)

    assert len(tiny_image_model.classifier.get_layer(name).output.shape) == 4
    later = tiny_image_model.classifier.layers[
        [layer.name for layer in tiny_image_model.classifier.layers].index(name) + 1 :
    ]
    assert all(len(layer.output.shape) != 4 for layer in later)


def test_heatmaps_have_the_crop_size_and_lie_in_zero_one(tiny_image_model):
    size = tiny_image_model.crop_rule.size
    crops = np.random.default_rng(0).integers(0, 255, (3, size, size, 3), dtype=np.uint8)

    heatmaps = gradcam_heatmaps(tiny_image_model.classifier, crops)

    assert heatmaps.shape == (3, size, size)
    assert heatmaps.dtype == np.float32
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0


def test_the_heat_is_where_the_evidence_for_fake_is():
    heatmap = gradcam_heatmaps(_brightness_model(1.0), _top_left_patch())[0]

    assert heatmap[:8, :8].mean() > 0.9
    assert heatmap[8:, 8:].mean() < 0.1


def test_no_region_raising_the_logit_gives_an_empty_map_not_amplified_noise():
    heatmap = gradcam_heatmaps(_brightness_model(-1.0), _top_left_patch())[0]

    assert not heatmap.any()


def test_an_empty_batch_gives_no_heatmaps(tiny_image_model):
    assert gradcam_heatmaps(tiny_image_model.classifier, np.zeros((0, 48, 48, 3), dtype=np.uint8)).shape[0] == 0


def test_the_overlay_is_an_rgb_image_of_the_crop_size():
    crop = np.full((16, 16, 3), 128, dtype=np.uint8)
    heatmap = np.zeros((4, 4), dtype=np.float32)
    heatmap[0, 0] = 1.0

    overlay = overlay_heatmap(crop, heatmap)

    assert overlay.shape == (16, 16, 3) and overlay.dtype == np.uint8
    assert not np.array_equal(overlay[0, 0], overlay[15, 15])


def test_a_model_without_a_spatial_layer_is_refused():
    import keras

    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))

    with pytest.raises(ValueError, match="no layer with a 4-D"):
        find_last_spatial_layer(model)
