"""Re-synthesised pseudo-fakes (`ml.resynthesis`): the autoencoder and the refocusing; the stream that draws them
is tested with the mixture (`test_train_sources.py`)."""

from __future__ import annotations

import cv2
import numpy as np

from ml.resynthesis import build_resynthesiser, refocused_like, resynthesise, train_resynthesiser
from ml.sharpness import sharpness_of

SIZE = 16


def _faces(count: int, *, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """Smooth random textures standing in for face crops."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (0, 0), 2.0) for _ in range(count)]
    )


def test_the_resynthesiser_answers_crops_of_the_same_size_and_range() -> None:
    model = build_resynthesiser(input_size=SIZE, width=4)
    out = resynthesise(model, _faces(3))
    assert out.shape == (3, SIZE, SIZE, 3) and out.dtype == np.uint8
    assert resynthesise(model, np.zeros((0, SIZE, SIZE, 3), np.uint8)).shape == (0, SIZE, SIZE, 3)


def test_training_brings_the_reconstruction_closer_to_the_real_faces() -> None:
    faces = _faces(8)
    untrained = resynthesise(build_resynthesiser(input_size=SIZE, width=4), faces)
    trained = resynthesise(train_resynthesiser(faces, steps=100, batch_size=8, learning_rate=3e-3, width=4), faces)

    def error(reconstruction: np.ndarray) -> float:
        return float(np.abs(reconstruction.astype(float) - faces.astype(float)).mean())

    assert error(trained) < 0.7 * error(untrained)


def test_a_resynthesised_face_is_refocused_to_about_its_real_faces_sharpness() -> None:
    real = _faces(1, size=32)[0]
    blurry = cv2.GaussianBlur(real, (0, 0), 1.8)
    rng = np.random.default_rng(0)
    ratios = [sharpness_of(refocused_like(blurry, real, rng)) / sharpness_of(real) for _ in range(20)]
    # Drawn evenly in log between 1/2 and 2 of the real face's sharpness (as far as the filters reach), so it is
    # not left as blurry as the reconstruction came out.
    assert sharpness_of(blurry) / sharpness_of(real) < 0.6
    assert 0.7 <= float(np.median(ratios)) <= 1.6
