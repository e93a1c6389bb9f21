"""The helpers the crop checks (`ensemble_check`, `sharpness_check`) share: reading a run's frame scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.core.management.base import CommandError

from training.crop_checks import frames_flipped, out_of_fold_logits


def test_a_runs_frame_scores_say_whether_they_were_flipped(tmp_path: Path) -> None:
    before_the_option, flipped = tmp_path / "before.npz", tmp_path / "flipped.npz"
    np.savez_compressed(before_the_option, names=np.asarray(["a#0"]), logits=np.zeros(1))
    np.savez_compressed(flipped, names=np.asarray(["a#0"]), logits=np.zeros(1), test_time_flip=np.asarray(True))

    assert frames_flipped(before_the_option) is False
    assert frames_flipped(flipped) is True


def test_out_of_fold_logits_come_back_in_the_order_asked_and_refuse_another_caches_frames(tmp_path: Path) -> None:
    frames = tmp_path / "frames.npz"
    np.savez_compressed(frames, names=np.asarray(["a#0", "a#1", "b#0"]), logits=np.asarray([0.5, -1.0, 2.0]))

    np.testing.assert_allclose(out_of_fold_logits(frames, ["b#0", "a#0"]), [2.0, 0.5])
    with pytest.raises(CommandError, match="no score for c#0"):
        out_of_fold_logits(frames, ["c#0"])
