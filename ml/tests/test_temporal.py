"""Temporal cues (`ml.temporal`): flicker of the inner face between a frame and the next, in the same box."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ml.faces import CropRule
from ml.temporal import CUES, pair_cues, video_temporal_cues

SIZE = 128


def _texture(seed: int = 0, size: int = SIZE) -> np.ndarray:
    """A smooth random grey texture, the kind of detail optical flow can follow."""
    noise = np.random.default_rng(seed).uniform(0, 255, (size, size)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 3) * 3 - 255, 0, 255).astype(np.uint8)


def test_a_still_face_has_no_change_and_no_residual() -> None:
    crop = _texture()

    cues = pair_cues(crop, crop.copy())

    assert cues["change_ratio"] == 0.0
    assert cues["residual_ratio"] == 0.0


def test_flicker_inside_the_face_alone_raises_both_ratios() -> None:
    first = _texture()
    second = first.astype(np.int16)
    centre = slice(SIZE // 4, SIZE - SIZE // 4)
    flicker = np.random.default_rng(1).integers(-20, 21, (SIZE // 2, SIZE // 2))
    second[centre, centre] += flicker
    second = np.clip(second, 0, 255).astype(np.uint8)
    # A little noise everywhere, as a video codec leaves it, so the ring is not perfectly still.
    second = np.clip(second + np.random.default_rng(2).integers(-1, 2, second.shape), 0, 255).astype(np.uint8)

    cues = pair_cues(first, second)

    assert cues["change_ratio"] > 3
    assert cues["residual_ratio"] > 3


def test_a_head_that_moves_is_not_taken_for_flicker_once_motion_is_taken_out() -> None:
    scene = _texture(size=SIZE + 8)
    first, second = scene[4 : 4 + SIZE, 4 : 4 + SIZE], scene[6 : 6 + SIZE, 5 : 5 + SIZE]

    cues = pair_cues(np.ascontiguousarray(first), np.ascontiguousarray(second))

    # The whole crop moved, inner face and ring alike: no region changed more than the other.
    assert 0.5 < cues["change_ratio"] < 2.0
    assert cues["residual_ratio"] < 2.0


def test_it_refuses_crops_that_are_not_a_pair_of_grey_squares() -> None:
    with pytest.raises(ValueError, match="grey square"):
        pair_cues(_texture(), _texture()[:, :100])


def test_a_real_video_gives_one_row_of_cues_per_frame_pair_of_its_person(detector, data_dir: Path) -> None:
    video = sorted((data_dir / "videos" / "celebdf" / "real").iterdir())[0]
    scored: list[int] = []

    def score(crops: np.ndarray) -> np.ndarray:
        scored.append(len(crops))
        return np.zeros(len(crops))

    cues = video_temporal_cues(video, detector=detector, score=score, rule=CropRule(margin=0.15, size=64), frames=8)

    assert cues is not None and 1 <= cues.pairs <= 8
    assert set(cues.per_pair) == set(CUES)
    assert all(len(values) == cues.pairs for values in cues.per_pair.values())
    # Both faces of every pair go through the model in one call.
    assert scored == [2 * cues.pairs]
    assert cues.medians()["score_jump"] == 0.0
