"""Isotonic and Platt calibration of raw logits (`ml.calibration`)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.calibration import ISOTONIC_FLOOR, LogitCalibration, fit_isotonic_calibration
from ml.metrics import expected_calibration_error, fit_platt, roc_auc, sigmoid


def _two_kinds_of_fake(rng: np.random.Generator, n: int = 6000) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose fake rate steps: 20% below 0, 80% up to 10 (face swaps barely apart from reals), 99% beyond
    (GAN faces far out). A sigmoid of one slope cannot follow both steps."""
    logits = rng.uniform(-10.0, 20.0, n)
    fake_rate = np.where(logits < 0, 0.2, np.where(logits < 10, 0.8, 0.99))
    return logits, (rng.random(n) < fake_rate).astype(int)


def test_isotonic_beats_platt_where_fakes_differ_in_confidence_and_keeps_the_ranking() -> None:
    rng = np.random.default_rng(0)
    train_logits, train_labels = _two_kinds_of_fake(rng)
    test_logits, test_labels = _two_kinds_of_fake(rng)
    isotonic = fit_isotonic_calibration(train_logits, train_labels)
    scale, bias = fit_platt(train_logits, train_labels)
    assert isotonic.method == "isotonic"
    isotonic_ece = expected_calibration_error(test_labels, isotonic.probabilities(test_logits))
    platt_ece = expected_calibration_error(test_labels, sigmoid(scale * test_logits + bias))
    assert isotonic_ece < 0.03 and platt_ece > 0.05
    # Monotone everywhere, past the outermost knots too: calibration never reorders faces.
    grid = np.linspace(-60, 60, 20001)
    assert (np.diff(isotonic.logits(grid)) > 0).all()
    assert roc_auc(test_labels, isotonic.probabilities(test_logits)) == pytest.approx(roc_auc(test_labels, test_logits))


def test_isotonic_knots_stay_inside_the_floor_and_round_trip_through_settings() -> None:
    rng = np.random.default_rng(1)
    logits, labels = _two_kinds_of_fake(rng, 600)
    calibration = fit_isotonic_calibration(logits, labels)
    knots = sigmoid(np.asarray(calibration.knots[1]))
    assert knots.min() >= ISOTONIC_FLOOR - 1e-9 and knots.max() <= 1 - ISOTONIC_FLOOR + 1e-9
    stored = calibration.to_settings()
    assert stored["method"] == "isotonic" and len(stored["knots"][0]) == len(stored["knots"][1]) >= 2
    again = LogitCalibration.from_settings({**stored, "fitted_on": "calibration splits", "weights": "sources equally"})
    probe = np.linspace(-30, 30, 61)
    assert np.allclose(again.probabilities(probe), calibration.probabilities(probe), atol=1e-5)


def test_isotonic_weights_let_a_small_source_count_as_much_as_a_large_one() -> None:
    # 900 faces of a source whose fakes sit at logit 2, 100 of one whose reals sit there: unweighted, logit 2
    # means "fake" 90% of the time; weighted equally per source, about half.
    logits = np.r_[np.full(450, -5.0), np.full(450, 2.0), np.full(50, 2.0), np.full(50, 9.0)]
    labels = np.r_[np.zeros(450), np.ones(450), np.zeros(50), np.ones(50)].astype(int)
    source_weights = np.r_[np.full(900, 1 / 900), np.full(100, 1 / 100)]
    unweighted = fit_isotonic_calibration(logits, labels)
    weighted = fit_isotonic_calibration(logits, labels, weights=source_weights)
    assert unweighted.probabilities(np.array([2.0]))[0] == pytest.approx(0.9, abs=0.01)
    assert weighted.probabilities(np.array([2.0]))[0] == pytest.approx(0.5, abs=0.01)


def test_scores_that_rank_nothing_fall_back_to_the_base_rate() -> None:
    logits = np.r_[np.full(30, 1.0), np.full(10, 1.0)]
    labels = np.r_[np.zeros(30), np.ones(10)].astype(int)
    calibration = fit_isotonic_calibration(logits, labels)
    assert calibration.method == "platt" and calibration.scale == 0.0
    assert calibration.probabilities(np.array([-10.0, 10.0])) == pytest.approx([0.25, 0.25], abs=1e-6)


def test_platt_settings_and_missing_settings() -> None:
    platt = LogitCalibration.from_settings({"method": "platt, sources weighted equally", "scale": 0.5, "bias": -1.0})
    assert platt.method == "platt"
    assert platt.logits(np.array([4.0]))[0] == pytest.approx(1.0)
    assert LogitCalibration.from_settings(None).probabilities(np.array([0.0]))[0] == pytest.approx(0.5)
    assert LogitCalibration.from_settings({"scale": 2.0, "bias": 0.0}).to_settings() == {
        "method": "platt",
        "scale": 2.0,
        "bias": 0.0,
    }
