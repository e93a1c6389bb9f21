"""The v2 recipe's mixture: which rows each stage draws from, and in what proportions (no training here)."""

from __future__ import annotations

import cv2
import numpy as np

from ml.augment import AugmentConfig
from ml.train_sources import (
    CROSS_BLENDED_STREAM,
    RESYNTHESISED_STREAM,
    CropPool,
    SourceTrainingConfig,
    mixture_batches,
    mixture_streams,
    stage2_streams,
    stream_weights,
)


def _pool() -> CropPool:
    """Two DFDC crops (a real and a fake) and two frames of each of two Celeb-DF videos (one real, one fake)."""
    source = np.asarray(["dfdc-faces", "dfdc-faces", "celebdf", "celebdf", "celebdf", "celebdf"])
    labels = np.asarray([0, 1, 0, 0, 1, 1])
    unit = np.asarray(["a.jpg", "b.jpg", "real.mp4", "real.mp4", "fake.mp4", "fake.mp4"])
    return CropPool(
        images=np.zeros((6, 4, 4, 3), dtype=np.uint8),
        labels=labels,
        landmarks=np.zeros((6, 5, 2), dtype=np.float32),
        source=source,
        split=np.asarray(["train", "train", "fold0", "fold0", "fold0", "fold0"]),
        group=np.asarray(["a", "a", "g", "g", "g", "g"]),
        unit=unit,
        manipulation=np.where(labels == 1, 0, -1),
        names=[f"{name}#{row}" for row, name in enumerate(unit)],
    )


# Every augmentation off, so a test sees the drawn crops as the stream made them.
UNTOUCHED = AugmentConfig(
    reframe_probability=0, flip_probability=0, rescale_probability=0, blur_probability=0,
    sharpen_probability=0, colour_probability=0, grey_probability=0, noise_probability=0, jpeg_probability=0,
)  # fmt: skip


def _two_reals_two_fakes(images: np.ndarray) -> CropPool:
    """Four DFDC crops of two source videos: `images[:2]` real, `images[2:]` their fakes."""
    labels = np.asarray([0, 0, 1, 1])
    return CropPool(
        images=images,
        labels=labels,
        landmarks=np.full((4, 5, 2), np.nan, dtype=np.float32),
        source=np.asarray(["dfdc-faces"] * 4),
        split=np.asarray(["train"] * 4),
        group=np.asarray(["a", "b", "a", "b"]),
        unit=np.asarray(["r0", "r1", "f0", "f1"]),
        manipulation=np.where(labels == 1, 0, -1),
        names=["r0", "r1", "f0", "f1"],
    )


def _rows_by_stream(streams) -> dict[str, list[int]]:
    return {stream.name: sorted(int(row) for unit in stream.units for row in unit) for stream in streams}


def test_stage_two_draws_the_videos_fake_frames_by_default() -> None:
    streams = stage2_streams(_pool(), np.asarray([0, 1]), np.asarray([2, 3, 4, 5]), SourceTrainingConfig())
    rows = _rows_by_stream(streams)
    assert rows["videos:real"] == [2, 3] and rows["videos:fake"] == [4, 5]
    # Self-blends are made from every real face, the video's real frames among them.
    assert rows["self-blended"] == [0, 2, 3]


def test_stage_two_with_the_videos_reals_only_never_draws_a_fake_frame() -> None:
    config = SourceTrainingConfig(video_fakes=False)
    streams = stage2_streams(_pool(), np.asarray([0, 1]), np.asarray([2, 3, 4, 5]), config)
    rows = _rows_by_stream(streams)
    assert "videos:fake" not in rows
    assert rows["videos:real"] == [2, 3] and rows["self-blended"] == [0, 2, 3]
    # The fake half is the image fakes and the self-blends; the real half still splits evenly by stream.
    weights = dict(zip(rows, stream_weights(streams, config.stream_emphasis), strict=True))
    assert abs(sum(weights[name] for name in ("dfdc-faces:fake", "self-blended")) - 0.5) < 1e-9
    assert weights["videos:real"] == 0.5 * 3 / (3 + 3)


def test_sharpness_matching_softens_the_drawn_reals_of_a_source_whose_fakes_are_blurrier() -> None:
    from ml.sharpness import SharpnessMatching, sharpness

    rng = np.random.default_rng(0)
    crisp = [cv2.GaussianBlur(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), (0, 0), 0.6) for _ in range(4)]
    images = np.stack(crisp[:2] + [cv2.GaussianBlur(crop, (0, 0), 1.5) for crop in crisp[2:]])
    pool = _two_reals_two_fakes(images)
    labels = pool.labels
    streams = mixture_streams(pool, np.arange(4), self_blended=False)

    def drawn(matching):
        images, targets = mixture_batches(
            pool, streams, steps=1, batch_size=32, augment=UNTOUCHED, seed=0, matching=matching
        )[0]
        return sharpness(images.astype(np.uint8)), targets["logit"].ravel()

    matching = SharpnessMatching(pool.source, labels, pool.sharpness, probability=1.0)
    before, real_before = drawn(None)
    after, real_after = drawn(matching)
    np.testing.assert_array_equal(real_before, real_after)
    reals = real_after == 0
    fakes = real_after == 1
    # Without matching the reals are far sharper than the fakes; with it, they come down to the fakes' focus.
    assert np.median(before[reals]) > 5 * np.median(before[fakes])
    assert np.median(after[reals]) <= 1.05 * np.median(after[fakes])
    # The fakes, already the blurrier class, are drawn as they are.
    assert np.isclose(after[fakes][:, None], pool.sharpness[None, 2:]).any(axis=1).all()


def test_the_resynthesised_stream_draws_reconstructions_of_real_rows_as_fakes_of_no_known_kind() -> None:
    rng = np.random.default_rng(0)
    faces = np.stack(
        [cv2.GaussianBlur(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), (0, 0), 2.0) for _ in range(4)]
    )
    pool = _two_reals_two_fakes(faces)
    reconstructions = 255 - faces[:2]  # unmistakable stand-ins for the autoencoder's output
    streams = mixture_streams(
        pool, np.arange(4), self_blended=False, resynthesised=(np.asarray([0, 1]), reconstructions)
    )
    assert [stream.name for stream in streams] == ["dfdc-faces:real", "dfdc-faces:fake", RESYNTHESISED_STREAM]
    # The fake half is shared between the source's fakes and the re-synthesised faces.
    assert list(stream_weights(streams)) == [0.5, 0.25, 0.25]

    images, targets = mixture_batches(pool, streams, steps=1, batch_size=64, augment=UNTOUCHED, seed=0)[0]
    # Fakes whose kind is unknown (-1, as every real face's): the second head learns nothing from them.
    unknown_kind = (targets["manipulation"] == -1) & (targets["logit"].ravel() == 1)
    assert unknown_kind.any()
    # Each of them is one of the reconstructions (refocused), not a real face or a source fake.
    for image in images[unknown_kind].astype(np.uint8):
        distances = [np.abs(image.astype(float) - other.astype(float)).mean() for other in [*reconstructions, *faces]]
        assert int(np.argmin(distances)) < len(reconstructions)


def test_the_cross_blended_stream_pastes_another_units_face_and_calls_it_a_face_swap() -> None:
    # Two real faces of two source videos, each one flat colour, with a frontal face's landmarks.
    faces = np.zeros((4, 64, 64, 3), dtype=np.uint8)
    faces[0], faces[1], faces[2], faces[3] = 60, 200, 120, 120
    pool = _two_reals_two_fakes(faces)
    pool.landmarks[:] = np.float32([[22, 26], [42, 26], [32, 36], [24, 46], [40, 46]])
    streams = mixture_streams(pool, np.arange(4), self_blended=False, cross_blended=True)
    assert [stream.name for stream in streams] == ["dfdc-faces:real", "dfdc-faces:fake", CROSS_BLENDED_STREAM]
    assert _rows_by_stream(streams)[CROSS_BLENDED_STREAM] == [0, 1]

    images, targets = mixture_batches(pool, streams, steps=1, batch_size=64, augment=UNTOUCHED, seed=0)[0]
    labels = targets["logit"].ravel()
    # A blend keeps its own face's edges and takes the other person's face in the middle (never its own:
    # a flat face blended with itself would not change).
    blends = [image for image in images if image[0, 0, 0] in (60, 200) and image[32, 32, 0] not in (60, 200)]
    assert blends
    for image in blends:
        assert labels[[np.array_equal(image, other) for other in images].index(True)] == 1
        edge, centre = image[0, 0, 0], image[34, 32, 0]
        assert (centre > edge) if edge == 60 else (centre < edge)
    # Every fake the stream drew is a face swap to the second head.
    assert set(targets["manipulation"][labels == 1].tolist()) == {0}
