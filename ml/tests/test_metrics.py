"""The NumPy metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from ml.metrics import (
    binary_report,
    choose_threshold,
    choose_threshold_capped,
    choose_uncertain_band,
    expected_calibration_error,
    fit_platt,
    rank_correlation,
    roc_auc,
    sigmoid,
)


def test_auc_counts_ordered_pairs_and_ties_as_half() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert roc_auc([1, 1], [0.2, 0.3]) is None


def test_binary_report_uses_the_threshold() -> None:
    report = binary_report([0, 0, 1, 1], [0.2, 0.6, 0.7, 0.9], threshold=0.65)
    assert report["accuracy"] == 1.0
    assert report["confusion"] == {"tp": 2, "fp": 0, "tn": 2, "fn": 0}
    assert report["n"] == 4
    report = binary_report([0, 0, 1, 1], [0.2, 0.6, 0.7, 0.9], threshold=0.5)
    assert report["precision"] == pytest.approx(2 / 3)
    assert report["recall"] == 1.0


def test_ece_is_zero_when_confidence_matches_frequency() -> None:
    labels = np.array([1] * 3 + [0] * 7 + [1] * 9 + [0] * 1)
    probabilities = np.array([0.3] * 10 + [0.9] * 10)
    assert expected_calibration_error(labels, probabilities) == pytest.approx(0.0)
    assert expected_calibration_error([1, 0], [0.0, 1.0]) == pytest.approx(1.0)


def test_platt_recovers_a_known_scale_and_bias() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, 4000)
    labels = (rng.random(4000) < sigmoid(0.5 * logits - 1.0)).astype(int)
    scale, bias = fit_platt(logits, labels)
    assert scale == pytest.approx(0.5, abs=0.08)
    assert bias == pytest.approx(-1.0, abs=0.15)


def test_threshold_and_band_separate_the_classes() -> None:
    labels = np.array([0] * 50 + [1] * 50)
    probabilities = np.r_[np.linspace(0.0, 0.45, 50), np.linspace(0.55, 1.0, 50)]
    threshold = choose_threshold(labels, probabilities)
    assert 0.45 < threshold <= 0.55
    low, high = choose_uncertain_band(labels, probabilities, threshold)
    assert low <= threshold <= high
    assert (low, high) == (0.35, 0.65)


def test_weighted_platt_lets_a_small_source_count_as_much_as_a_large_one() -> None:
    rng = np.random.default_rng(1)
    # A large source whose logits are over-confident by 2x and a small one whose logits are right.
    large = rng.normal(0, 4, 4000)
    large_labels = (rng.random(4000) < sigmoid(0.5 * large)).astype(int)
    small = rng.normal(0, 2, 200)
    small_labels = (rng.random(200) < sigmoid(small)).astype(int)
    logits, labels = np.r_[large, small], np.r_[large_labels, small_labels]
    unweighted, _ = fit_platt(logits, labels)
    weights = np.r_[np.full(4000, 1 / 4000), np.full(200, 1 / 200)]
    weighted, _ = fit_platt(logits, labels, weights=weights)
    assert unweighted == pytest.approx(0.5, abs=0.08)
    assert weighted > unweighted + 0.1


def test_the_capped_threshold_keeps_every_real_source_under_the_false_positive_cap() -> None:
    # Source "b" has real faces that look fake: a plain balanced-accuracy cut would flag a fifth of them.
    labels = np.array([0] * 100 + [1] * 100 + [0] * 100 + [1] * 100)
    groups = np.array(["a"] * 200 + ["b"] * 200)
    probabilities = np.r_[
        np.linspace(0.0, 0.4, 100), np.linspace(0.6, 1.0, 100), np.linspace(0.0, 0.7, 100), np.linspace(0.65, 1.0, 100)
    ]
    plain = choose_threshold(labels, probabilities)
    capped = choose_threshold_capped(labels, probabilities, groups, max_false_positive_rate=0.05)
    b_reals = probabilities[(groups == "b") & (labels == 0)]
    assert (b_reals >= plain).mean() > 0.05
    assert (b_reals >= capped).mean() <= 0.05
    a_reals = probabilities[(groups == "a") & (labels == 0)]
    assert (a_reals >= capped).mean() <= 0.05


def test_platt_scaling_converges_on_logits_in_the_tens_with_weighted_sources() -> None:
    # A fine-tuned network's logits: GAN and diffusion fakes near +20, face swaps near +1.7, reals near -1, three
    # sources weighted equally. Plain Newton from scale 1 diverged on exactly this (scale 1.4e10).
    rng = np.random.default_rng(0)
    logits = np.r_[
        rng.normal(21, 3, 200), rng.normal(18, 3, 40), rng.normal(1.7, 2, 300),
        rng.normal(-1.8, 2, 200), rng.normal(-1.5, 3, 40), rng.normal(-0.9, 2, 300),
    ]  # fmt: skip
    labels = np.r_[np.ones(540), np.zeros(540)]
    sources = np.r_[np.zeros(200), np.ones(40), np.full(300, 2), np.zeros(200), np.ones(40), np.full(300, 2)]
    weights = np.asarray([1.0 / (sources == source).sum() for source in sources])
    scale, bias = fit_platt(logits, labels, weights=weights)
    assert np.isfinite(scale) and np.isfinite(bias) and 0 < scale < 10
    probabilities = sigmoid(scale * logits + bias)
    assert probabilities[labels == 0].mean() < 0.35 and probabilities[labels == 1].mean() > 0.65


def test_real_verdicts_are_capped_per_source_by_the_share_of_its_fakes_below_the_band() -> None:
    from ml.metrics import cap_real_verdicts

    # Source a: its fakes sit low (face swaps); source b: far above. 20 fakes each: at most 1 may be called real.
    probabilities = np.r_[np.linspace(0.0, 0.1, 20), np.linspace(0.02, 0.5, 20), np.full(20, 0.01), np.full(20, 0.99)]
    labels = np.r_[np.zeros(20), np.ones(20), np.zeros(20), np.ones(20)].astype(int)
    groups = np.array(["a"] * 40 + ["b"] * 40)
    low = cap_real_verdicts(labels, probabilities, groups, 0.15, max_miss_rate=0.05)
    a_fakes = probabilities[20:40]
    assert (a_fakes <= low).sum() <= 1 and low < a_fakes[1]
    # Where no source's fakes reach the band, the edge stays where the band put it.
    assert cap_real_verdicts(labels[40:], probabilities[40:], groups[40:], 0.15) == 0.15
    # The edge never goes below 0, the lowest probability there is.
    assert cap_real_verdicts(np.array([1, 1, 0]), np.array([0.0, 0.0, 0.0]), np.array(["x"] * 3), 0.15) == 0.0


def test_rank_correlation_is_spearmans() -> None:
    values = np.asarray([1.0, 2.0, 3.0, 4.0])
    assert rank_correlation(values, values**3) == pytest.approx(1.0)
    assert rank_correlation(values, -values) == pytest.approx(-1.0)
    assert rank_correlation(values[:2], values[:2]) is None
