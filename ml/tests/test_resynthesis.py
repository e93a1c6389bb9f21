"""Re-synthesised pseudo-fakes: the autoencoder, the refocusing and the stream that draws them (`ml.resynthesis`)."""

from __future__ import annotations

import cv2
import numpy as np

from ml.augment import AugmentConfig
from ml.resynthesis import build_resynthesiser, refocused_like, resynthesise, train_resynthesiser
from ml.sharpness import sharpness_of
from ml.train_sources import RESYNTHESISED_STREAM, CropPool, mixture_batches, mixture_streams, stream_weights

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


def test_the_resynthesised_stream_draws_reconstructions_of_real_rows_as_fakes_of_no_known_kind() -> None:
    faces = _faces(4)
    labels = np.asarray([0, 0, 1, 1])
    pool = CropPool(
        images=faces,
        labels=labels,
        landmarks=np.full((4, 5, 2), np.nan, dtype=np.float32),
        source=np.asarray(["dfdc-faces"] * 4),
        split=np.asarray(["train"] * 4),
        group=np.asarray(["a", "b", "a", "b"]),
        unit=np.asarray(["r0", "r1", "f0", "f1"]),
        manipulation=np.where(labels == 1, 0, -1),
        names=["r0", "r1", "f0", "f1"],
    )
    reconstructions = 255 - faces[:2]  # unmistakable stand-ins for the autoencoder's output
    streams = mixture_streams(
        pool, np.arange(4), self_blended=False, resynthesised=(np.asarray([0, 1]), reconstructions)
    )
    assert [stream.name for stream in streams] == ["dfdc-faces:real", "dfdc-faces:fake", RESYNTHESISED_STREAM]
    # The fake half is shared between the source's fakes and the re-synthesised faces.
    assert list(stream_weights(streams)) == [0.5, 0.25, 0.25]

    untouched = AugmentConfig(
        reframe_probability=0, flip_probability=0, rescale_probability=0, blur_probability=0,
        sharpen_probability=0, colour_probability=0, grey_probability=0, noise_probability=0, jpeg_probability=0,
    )  # fmt: skip
    images, targets = mixture_batches(pool, streams, steps=1, batch_size=64, augment=untouched, seed=0)[0]
    # Fakes whose kind is unknown (-1, as every real face's): the second head learns nothing from them.
    unknown_kind = (targets["manipulation"] == -1) & (targets["logit"].ravel() == 1)
    assert unknown_kind.any()
    # Each of them is one of the reconstructions (refocused), not a real face or a source fake.
    for image in images[unknown_kind].astype(np.uint8):
        distances = [np.abs(image.astype(float) - other.astype(float)).mean() for other in [*reconstructions, *faces]]
        assert int(np.argmin(distances)) < len(reconstructions)
