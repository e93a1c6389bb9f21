"""The v2 recipe's mixture: which rows each stage draws from, and in what proportions (no training here)."""

from __future__ import annotations

import numpy as np

from ml.train_sources import CropPool, SourceTrainingConfig, stage2_streams, stream_weights


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
