"""`manage.py probe_check`'s own parts: the linear read-out and the feature cache (the frozen backbone is Keras's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml.metrics import roc_auc
from training.management.commands.probe_check import _cached_features, _logistic_regression


def test_the_logistic_regression_finds_the_direction_that_separates_the_classes() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    y = (x[:, 2] - 0.5 * x[:, 4] > 0).astype(np.int32)

    coefficients, _ = _logistic_regression(x, y, np.ones(len(y)), l2=1e-4, seed=0)

    assert roc_auc(y, x @ coefficients) > 0.99
    assert np.argmax(np.abs(coefficients)) == 2 and coefficients[2] > 0 and coefficients[4] < 0


def test_a_stronger_penalty_gives_smaller_coefficients() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    y = (x[:, 0] + rng.normal(scale=0.5, size=300) > 0).astype(np.int32)

    weak, _ = _logistic_regression(x, y, np.ones(len(y)), l2=1e-4, seed=0)
    strong, _ = _logistic_regression(x, y, np.ones(len(y)), l2=1e-1, seed=0)

    assert np.linalg.norm(strong) < np.linalg.norm(weak)


def test_features_are_computed_once_per_set_of_crops_and_again_for_another_set(tmp_path: Path) -> None:
    path, calls = tmp_path / "features.npz", []

    def compute(value: float):
        def run() -> np.ndarray:
            calls.append(value)
            return np.full((2, 3), value, dtype=np.float32)

        return run

    first = _cached_features(path, ["a", "b"], compute(1.0))
    again = _cached_features(path, ["a", "b"], compute(2.0))
    other = _cached_features(path, ["a", "c"], compute(3.0))

    assert calls == [1.0, 3.0]
    np.testing.assert_array_equal(first, again)
    assert float(other[0, 0]) == 3.0
