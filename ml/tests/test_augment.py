"""Training-time augmentation (`ml.augment`): what each recipe's degradations do to a crop."""

from __future__ import annotations

import numpy as np

from ml.augment import AugmentConfig, add_bars, augment_crop
from ml.train_sources import LIGHT_AUGMENT


def _face_like(size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(60, 220, size=(size, size, 3), dtype=np.uint8)


def test_bars_cover_two_opposite_edges_and_leave_the_middle() -> None:
    crop = _face_like()
    rng = np.random.default_rng(0)
    side = add_bars(crop, 0.125, vertical=True, rng=rng)
    assert side[:, :8].max() < 24 and side[:, -8:].max() < 24
    assert (side[:, 8:-8] == crop[:, 8:-8]).all()
    top = add_bars(crop, 0.125, vertical=False, rng=rng)
    assert top[:8].max() < 24 and top[-8:].max() < 24 and (top[8:-8] == crop[8:-8]).all()
    assert (crop >= 60).all(), "the input crop is never written to"


def test_every_recipe_keeps_the_crop_size_and_only_the_light_recipe_adds_bars() -> None:
    crop = _face_like()

    def barred_share(config: AugmentConfig) -> float:
        rng = np.random.default_rng(1)
        outputs = [augment_crop(crop, rng, config) for _ in range(300)]
        assert all(output.shape == crop.shape and output.dtype == np.uint8 for output in outputs)
        # A bar is a run of near-black columns or rows at both edges; the crop itself is never that dark.
        return float(
            np.mean(
                [
                    (output[:, :2].max() < 40 and output[:, -2:].max() < 40)
                    or (output[:2].max() < 40 and output[-2:].max() < 40)
                    for output in outputs
                ]
            )
        )

    assert barred_share(AugmentConfig()) == 0.0
    assert 0.1 < barred_share(LIGHT_AUGMENT) < 0.3
    assert LIGHT_AUGMENT.reframe_zoom[0] < AugmentConfig().reframe_zoom[0]
