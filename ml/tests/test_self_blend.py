"""Self-blended and cross-blended pseudo-fakes: landmarks land where the crop puts them, and only the inner face
changes."""

from __future__ import annotations

import numpy as np

from ml.faces import CropRule, crop_square
from ml.self_blend import (
    LANDMARK_ORDER,
    crop_landmarks,
    cross_blend,
    inner_face_mask,
    landmark_shape,
    nearest_in_pose,
    self_blend,
)

# Where MTCNN puts them in a 128 px crop of a frontal face (margin 0.15).
FACE_LANDMARKS = np.float32([[45, 52], [83, 52], [64, 72], [49, 92], [79, 92]])


def _textured_crop(size: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(60, 200, size=(size, size, 3), dtype=np.uint8)


def test_landmarks_map_into_the_crop_exactly_as_crop_square_cuts_it() -> None:
    rule = CropRule(margin=0.15, size=128)
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    box = [500, 300, 120, 150]  # near the bottom-right corner, so the square is shifted to stay inside
    landmarks = {"left_eye": [540, 350], "right_eye": [590, 350], "nose": [565, 380]}
    landmarks |= {"mouth_left": [545, 410], "mouth_right": [585, 410]}
    for x, y in landmarks.values():
        image[y - 1 : y + 2, x - 1 : x + 2] = 255

    crop = crop_square(image, box, rule)
    points = crop_landmarks(landmarks, box=box, image_width=640, image_height=480, margin=rule.margin, size=rule.size)

    assert points.shape == (5, 2)
    for name, (x, y) in zip(LANDMARK_ORDER, points, strict=True):
        column, row = int(round(x)), int(round(y))
        assert crop[row, column].max() > 100, f"{name} is not where the crop shows it"


def test_no_landmarks_means_no_self_blending_material() -> None:
    assert (
        crop_landmarks({"left_eye": [1, 1]}, box=[0, 0, 10, 10], image_width=20, image_height=20, margin=0.1, size=8)
        is None
    )


def test_the_mask_covers_the_inner_face_and_leaves_the_border_alone() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = inner_face_mask(FACE_LANDMARKS, 128, rng)
        assert mask.dtype == np.float32 and mask.max() <= 1.0
        assert mask[70, 64] > 0.5  # the nose
        assert mask[:4].max() < 0.1 and mask[:, :4].max() < 0.1 and mask[:, -4:].max() < 0.1


def test_a_self_blended_crop_changes_inside_the_face_and_not_at_its_edges() -> None:
    crop = _textured_crop()
    rng = np.random.default_rng(1)
    changed_centre = []
    for _ in range(20):
        blended = self_blend(crop, FACE_LANDMARKS, rng)
        assert blended.shape == crop.shape and blended.dtype == np.uint8
        difference = np.abs(blended.astype(int) - crop.astype(int)).max(axis=2)
        assert difference[:4].max() <= 2 and difference[:, :4].max() <= 2
        changed_centre.append(difference[60:80, 54:74].mean())
    assert np.mean(changed_centre) > 3.0


def test_self_blending_is_reproducible_from_its_seed() -> None:
    crop = _textured_crop()
    first = self_blend(crop, FACE_LANDMARKS, np.random.default_rng(7))
    second = self_blend(crop, FACE_LANDMARKS, np.random.default_rng(7))
    assert np.array_equal(first, second)


def test_even_focus_blends_are_as_often_sharper_than_their_face_as_blurrier() -> None:
    import cv2

    from ml.sharpness import sharpness_of

    # A smooth face-like texture: detail at the scale a face crop has, so blur and sharpening both show.
    crops = [cv2.GaussianBlur(_textured_crop(seed=seed), (0, 0), 1.0) for seed in range(8)]
    rng = np.random.default_rng(0)

    def ratios(even_focus: bool) -> np.ndarray:
        return np.asarray(
            [
                sharpness_of(self_blend(crop, FACE_LANDMARKS, rng, even_focus=even_focus)) / sharpness_of(crop)
                for crop in crops
                for _ in range(8)
            ]
        )

    plain, even = ratios(False), ratios(True)
    # The plain recipe's blends are mostly blurrier (the cue the option removes) ...
    assert (plain < 1).mean() > 0.7
    # ... the even ones split about evenly, within the factor of 2 either way they are drawn from.
    assert 0.3 < (even < 1).mean() < 0.7
    assert 0.4 < np.median(even) < 2.5


def test_a_cross_blend_puts_the_donors_aligned_face_inside_the_targets_and_nothing_at_its_edges() -> None:
    target = _textured_crop()
    # The donor's face sits smaller and shifted in its crop; a bright square marks its nose.
    donor_landmarks = FACE_LANDMARKS * 0.8 + np.float32([6, 10])
    donor = np.full((128, 128, 3), 40, dtype=np.uint8)
    nose_x, nose_y = (int(round(value)) for value in donor_landmarks[2])
    donor[nose_y - 4 : nose_y + 5, nose_x - 4 : nose_x + 5] = 250
    rng = np.random.default_rng(0)
    for _ in range(10):
        blended = cross_blend(target, FACE_LANDMARKS, donor, donor_landmarks, rng)
        assert blended.shape == target.shape and blended.dtype == np.uint8
        difference = np.abs(blended.astype(int) - target.astype(int)).max(axis=2)
        assert difference[:4].max() <= 2 and difference[:, :4].max() <= 2 and difference[:, -4:].max() <= 2
        # Aligned by the landmarks, the donor's nose lands on the target's: brighter there than around it.
        assert blended[70:75, 62:67].mean() > blended[60:80, 40:50].mean()


def test_colour_matching_brings_the_donors_face_to_the_targets_colour() -> None:
    target = np.zeros((128, 128, 3), dtype=np.uint8)
    target[...] = (180, 120, 100)
    donor = np.zeros((128, 128, 3), dtype=np.uint8)
    donor[...] = (60, 90, 160)
    centres = [
        cross_blend(target, FACE_LANDMARKS, donor, FACE_LANDMARKS, np.random.default_rng(seed))[70, 64]
        for seed in range(40)
    ]
    distances = [int(np.abs(centre.astype(int) - target[70, 64].astype(int)).sum()) for centre in centres]
    # Four blends in five take the target's colours (a few levels off, from rounding through Lab); the rest keep
    # the donor's, as a swap with a poor colour transfer does.
    assert 0.6 < np.mean(np.asarray(distances) <= 12) < 0.95
    assert max(distances) > 60


def test_the_donor_nearest_in_pose_is_chosen() -> None:
    # A face turned aside: its nose moves further than its eyes and mouth.
    turned = FACE_LANDMARKS + np.float32([[12, 0], [12, 0], [20, 0], [12, 0], [12, 0]])
    candidates = np.stack([landmark_shape(turned), landmark_shape(FACE_LANDMARKS * 1.3 + 5)])
    # Scale and position do not count, pose does: the enlarged frontal face is nearest a frontal target.
    assert nearest_in_pose(landmark_shape(FACE_LANDMARKS), candidates) == 1
