"""The focus measure, softening a crop to a target focus, and matching each class's focus to the other's."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ml.sharpness import SharpnessMatching, sharpness, sharpness_of, soften_to


def _textured(seed: int, size: int = 64) -> np.ndarray:
    """A crop with detail at every scale (noise smoothed a little), sharp enough to soften."""
    noise = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 0.6)


def test_a_blurred_crop_is_less_sharp() -> None:
    crisp = _textured(0)
    assert sharpness_of(cv2.GaussianBlur(crisp, (0, 0), 2.0)) < sharpness_of(crisp) / 10
    assert sharpness([crisp, crisp]).shape == (2,)


@pytest.mark.parametrize("downscale", [False, True])
def test_softening_reaches_the_target_focus_and_never_sharpens(downscale: bool) -> None:
    crop = _textured(1)
    start = sharpness_of(crop)
    softened = soften_to(crop, start / 4, downscale=downscale)
    assert softened.shape == crop.shape and softened.dtype == crop.dtype
    # Bisection lands just under the target, within the last step's resolution.
    assert start / 8 < sharpness_of(softened) <= start / 4
    # A crop already as soft as the target comes back unchanged.
    assert soften_to(crop, start * 2, downscale=downscale) is crop


def test_matching_brings_the_sharper_class_down_to_the_blurrier_and_leaves_the_blurrier_alone() -> None:
    crisp = [_textured(seed) for seed in range(6)]
    soft = [cv2.GaussianBlur(crop, (0, 0), 1.5) for crop in crisp]
    crops = np.stack(crisp + soft)
    # Reals sharp, fakes blurred: the shortcut DFDC has.
    labels = np.asarray([0] * 6 + [1] * 6)
    sources = np.asarray(["dfdc-faces"] * 12)
    matching = SharpnessMatching.of_rows(crops, sources, labels, probability=1.0)
    medians = matching.medians()["dfdc-faces"]
    assert medians["real"] > 5 * medians["fake"]
    rng = np.random.default_rng(0)
    matched_reals = [sharpness_of(matching.apply(crop, "dfdc-faces", 0, rng)) for crop in crisp for _ in range(3)]
    assert np.median(matched_reals) <= medians["fake"] * 1.05
    # Fakes are already the blurrier class: softening to a real's focus leaves them as they are.
    assert all(matching.apply(crop, "dfdc-faces", 1, rng) is crop for crop in soft)


def test_matching_is_per_source_and_off_at_probability_zero() -> None:
    crops = np.stack([_textured(seed) for seed in range(4)])
    matching = SharpnessMatching.of_rows(
        crops, np.asarray(["a", "a", "b", "b"]), np.asarray([0, 0, 0, 0]), probability=1.0
    )
    first = crops[0]
    # A source with no fakes has nothing to match its reals to.
    assert matching.apply(first, "a", 0, np.random.default_rng(0)) is first
    off = SharpnessMatching.of_rows(crops, np.asarray(["a"] * 4), np.asarray([0, 0, 1, 1]), probability=0.0)
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert off.apply(first, "a", 0, rng) is first
    # Off means off: not even a random draw, so a run without matching draws exactly what it drew before.
    assert rng.bit_generator.state == state


def test_refocus_sharpens_or_blurs_to_the_target_and_only_under_the_mask() -> None:
    from ml.sharpness import refocus

    crop = cv2.GaussianBlur(_textured(2), (0, 0), 1.0)
    start = sharpness_of(crop)
    for factor in (0.5, 2.0):
        refocused = refocus(crop, start * factor)
        assert refocused.dtype == np.float32
        assert sharpness_of(refocused) == pytest.approx(start * factor, rel=0.1)
    mask = np.zeros(crop.shape[:2], dtype=np.float32)
    mask[16:48, 16:48] = 1.0
    refocused = refocus(crop, start * 2.0, mask=mask)
    # Outside the mask the crop is untouched; inside, sharper.
    np.testing.assert_allclose(refocused[:8], crop[:8].astype(np.float32))
    assert sharpness_of(refocused) > start * 1.5
