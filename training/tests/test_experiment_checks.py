"""`calibration_check` and `temporal_check`: the experiments behind the cards' *not shipped* paragraphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ml.metrics import expected_calibration_error
from training.management.commands.calibration_check import (
    MIN_ROWS_PER_KIND,
    per_kind_maps,
    pooled_calibration,
    through_maps,
)
from training.management.commands.temporal_check import cue_table


def _two_kinds(rng: np.random.Generator, count: int):
    """Faces of two kinds whose classes part at different logits: kind 0 (swaps) near 0, kind 1 (GANs) near 6."""
    kinds = np.repeat([0, 1], count)
    labels = np.tile(np.repeat([0, 1], count // 2), 2)
    centres = np.where(kinds == 0, 0.0, 6.0)
    logits = centres + np.where(labels == 1, 1.0, -1.0) + rng.normal(0, 0.8, 2 * count)
    head = np.eye(2)[kinds] * 0.9 + 0.05
    sources = np.where(kinds == 0, "swaps", "gans").astype(object)
    return logits, labels, sources, head


def test_a_map_per_kind_is_truer_where_kinds_part_at_different_logits() -> None:
    rng = np.random.default_rng(0)
    fit = _two_kinds(rng, 400)
    logits, labels, _, head = _two_kinds(rng, 400)

    pooled = pooled_calibration(*fit[:3])
    maps = per_kind_maps(*fit, shared=pooled)
    shared = pooled.probabilities(logits)
    hard = through_maps(maps, logits, head, soft=False)
    soft = through_maps(maps, logits, head, soft=True)

    assert expected_calibration_error(labels, hard) < expected_calibration_error(labels, shared) - 0.05
    assert expected_calibration_error(labels, soft) < expected_calibration_error(labels, shared) - 0.05


def test_a_kind_the_head_names_for_too_few_faces_falls_back_to_the_shared_map() -> None:
    rng = np.random.default_rng(0)
    logits, labels, sources, _ = _two_kinds(rng, 200)
    head = np.tile([0.9, 0.1], (len(logits), 1))
    head[: MIN_ROWS_PER_KIND - 1] = [0.1, 0.9]  # kind 1 named for too few faces

    shared = pooled_calibration(logits, labels, sources)
    maps = per_kind_maps(logits, labels, sources, head, shared=shared)
    only_kind_one = np.tile([0.0, 1.0], (5, 1))
    probe = np.linspace(-3, 8, 5)

    np.testing.assert_allclose(through_maps(maps, probe, only_kind_one, soft=False), shared.probabilities(probe))


def test_the_temporal_table_ranks_each_cue_per_source_and_held_out_against_the_base_rate() -> None:
    rows = [
        {
            "source": "ffpp",
            "stem": f"ffpp_{index:03d}" if label == 0 else f"ffpp_deepfakes_{index:03d}_9{index:02d}",
            "label": label,
            "change_ratio": 1.0 + label + 0.01 * index,
            "residual_ratio": 1.0,
            "score_jump": 0.1,
        }
        for index, label in enumerate([0, 1] * 6)
    ]
    lines = cue_table(rows, ("change_ratio", "residual_ratio"), ("ffpp",), {"weights": Path("m.keras"), "frames": 4})

    assert "12 videos" in lines[0] and "held-out base-rate log-loss" in lines[0]
    base = float(lines[0].rsplit(" ", 1)[1].rstrip(":"))
    change, residual = lines[4], lines[5]
    assert change.startswith("| change_ratio | 1.00 | 1.00 |")
    assert residual.startswith("| residual_ratio | 0.50 | 0.50 |")
    # A cue that separates the classes beats the base rate held out; a constant one cannot.
    assert float(change.split("|")[-2]) < base - 0.1
    assert float(residual.split("|")[-2]) > base - 0.02


def test_the_checks_say_what_is_wrong_with_their_arguments(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no model file"):
        call_command("calibration_check", "--weights", str(tmp_path / "missing.keras"))
    with pytest.raises(CommandError, match="not video sources: dfdc-faces"):
        call_command("temporal_check", "--weights", str(tmp_path / "missing.keras"), "--video-sources", "dfdc-faces")
    with pytest.raises(CommandError, match="--frames must be at least 2"):
        call_command("temporal_check", "--weights", str(tmp_path / "missing.keras"), "--frames", "1")
