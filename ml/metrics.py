"""Evaluation and calibration in plain NumPy: ROC/PR curves, AUC, rank correlation, threshold metrics, log-loss, ECE,
Platt scaling.

Labels are 1 for fake and 0 for real; scores are fake probabilities (or logits, for curves and AUC).
"""

from __future__ import annotations

import math

import numpy as np

EPSILON = 1e-7


def sigmoid(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-np.clip(values, -60.0, 60.0)))


def logit(probabilities: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1.0 - EPSILON)
    return np.log(clipped / (1.0 - clipped))


def rank_correlation(first: np.ndarray, second: np.ndarray) -> float | None:
    """Spearman's rank correlation (ties broken by order; the scores here are continuous)."""
    if len(first) < 3:
        return None
    ranks = [np.argsort(np.argsort(values)).astype(np.float64) for values in (first, second)]
    if ranks[0].std() == 0 or ranks[1].std() == 0:
        return None
    return float(np.corrcoef(*ranks)[0, 1])


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); None with one class only."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    start = 0
    while start < len(scores):
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    rank_sum = ranks[labels].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rates, true-positive rates and thresholds, highest threshold first."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    distinct = np.where(np.diff(sorted_scores))[0]
    cut = np.r_[distinct, len(sorted_scores) - 1]
    true_positives = np.cumsum(sorted_labels)[cut]
    false_positives = (cut + 1) - true_positives
    tpr = np.r_[0.0, true_positives / max(1, labels.sum())]
    fpr = np.r_[0.0, false_positives / max(1, (~labels).sum())]
    thresholds = np.r_[np.inf, sorted_scores[cut]]
    return fpr, tpr, thresholds


def precision_recall_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall for every distinct threshold, highest threshold first."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    distinct = np.where(np.diff(sorted_scores))[0]
    cut = np.r_[distinct, len(sorted_scores) - 1]
    true_positives = np.cumsum(sorted_labels)[cut]
    predicted = cut + 1
    precision = true_positives / predicted
    recall = true_positives / max(1, labels.sum())
    return np.r_[1.0, precision], np.r_[0.0, recall]


def confusion(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, int]:
    labels = np.asarray(labels).astype(bool)
    predicted = np.asarray(probabilities) >= threshold
    return {
        "tp": int((predicted & labels).sum()),
        "fp": int((predicted & ~labels).sum()),
        "tn": int((~predicted & ~labels).sum()),
        "fn": int((~predicted & labels).sum()),
    }


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    labels = np.asarray(labels, dtype=np.float64)
    clipped = np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1.0 - EPSILON)
    return float(-np.mean(labels * np.log(clipped) + (1.0 - labels) * np.log(1.0 - clipped)))


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """ECE with `bins` equal-width bins of the fake probability, weighted by bin size."""
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(labels) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    positions = np.clip(np.digitize(probabilities, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for bin_number in range(bins):
        members = positions == bin_number
        if members.any():
            total += members.sum() * abs(probabilities[members].mean() - labels[members].mean())
    return float(total / len(labels))


def binary_report(labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> dict:
    """The figures `evaluate_model` reports: n, auc, accuracy, precision, recall, f1, log_loss, ece (+ confusion)."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    counts = confusion(labels, probabilities, threshold)
    n = len(labels)
    precision = counts["tp"] / (counts["tp"] + counts["fp"]) if counts["tp"] + counts["fp"] else 0.0
    recall = counts["tp"] / (counts["tp"] + counts["fn"]) if counts["tp"] + counts["fn"] else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    auc = roc_auc(labels, probabilities)
    return {
        "n": n,
        "auc": None if auc is None else round(auc, 6),
        "accuracy": round((counts["tp"] + counts["tn"]) / n, 6) if n else None,
        "precision": round(precision, 6),
        "recall": round(recall, 6),
        "f1": round(f1, 6),
        "log_loss": round(log_loss(labels, probabilities), 6) if n else None,
        "ece": round(expected_calibration_error(labels, probabilities), 6) if n else None,
        "threshold": threshold,
        "confusion": counts,
    }


def fit_platt(
    logits: np.ndarray, labels: np.ndarray, *, weights: np.ndarray | None = None, iterations: int = 200
) -> tuple[float, float]:
    """Platt scaling p = sigmoid(scale * logit + bias), fitted by Newton's method on the (weighted) log-loss.

    Targets are smoothed as Platt proposed ((n+ + 1) / (n+ + 2) and 1 / (n- + 2)) so that a perfectly
    separable calibration set does not drive the scale to infinity. `weights` (one per example) let every
    data source count equally however many examples it has.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    weights = np.ones_like(logits) if weights is None else np.asarray(weights, dtype=np.float64)
    weights = weights * (len(weights) / max(weights.sum(), 1e-12))
    positives, negatives = float((weights * labels).sum()), float((weights * (1.0 - labels)).sum())
    targets = np.where(labels > 0.5, (positives + 1.0) / (positives + 2.0), 1.0 / (negatives + 2.0))
    # Fitted on standardised logits, then mapped back: a network's logits can reach the tens, where a full Newton
    # step from scale 1 lands on saturated probabilities and diverges (it once returned a scale of 7.7e9).
    centre, spread = float(np.average(logits, weights=weights)), float(np.sqrt(np.cov(logits, aweights=weights)))
    spread = spread if math.isfinite(spread) and spread > 1e-12 else 1.0
    standard = (logits - centre) / spread

    def loss(scale: float, bias: float) -> float:
        margins = scale * standard + bias
        # log(1 + e^m) - t m, computed without overflow.
        return float(np.sum(weights * (np.logaddexp(0.0, margins) - targets * margins)))

    scale, bias = 1.0, 0.0
    current = loss(scale, bias)
    for _ in range(iterations):
        probabilities = sigmoid(scale * standard + bias)
        residual = weights * (probabilities - targets)
        gradient = np.array([np.sum(residual * standard), np.sum(residual)])
        curvature = weights * probabilities * (1.0 - probabilities) + 1e-12
        hessian = np.array(
            [
                [np.sum(curvature * standard * standard), np.sum(curvature * standard)],
                [np.sum(curvature * standard), np.sum(curvature)],
            ]
        )
        hessian += np.eye(2) * 1e-9
        step = np.linalg.solve(hessian, gradient)
        # Backtracking: never accept a step that makes the log-loss worse.
        length = 1.0
        while length > 1e-8 and loss(scale - length * step[0], bias - length * step[1]) > current:
            length /= 2.0
        if length <= 1e-8:
            break
        scale, bias = scale - length * step[0], bias - length * step[1]
        current = loss(scale, bias)
        if np.max(np.abs(length * step)) < 1e-10:
            break
    # Back to the raw logits: scale * (x - centre) / spread + bias.
    scale, bias = scale / spread, bias - scale * centre / spread
    if not (math.isfinite(scale) and math.isfinite(bias)) or scale <= 0:
        # Scores that do not rank the classes (or rank them backwards) carry no usable evidence:
        # answer the base rate for everything rather than trust them.
        base_rate = (positives + 1.0) / (len(labels) + 2.0)
        return 0.0, float(math.log(base_rate / (1.0 - base_rate)))
    return float(scale), float(bias)


def choose_threshold(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The probability cut that maximises balanced accuracy (ties: the one nearest 0.5)."""
    labels = np.asarray(labels).astype(bool)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    candidates = np.unique(np.r_[probabilities, 0.5])
    best, best_key = 0.5, (-1.0, 0.0)
    for candidate in candidates:
        predicted = probabilities >= candidate
        true_positive_rate = (predicted & labels).sum() / max(1, labels.sum())
        true_negative_rate = (~predicted & ~labels).sum() / max(1, (~labels).sum())
        key = ((true_positive_rate + true_negative_rate) / 2.0, -abs(candidate - 0.5))
        if key > best_key:
            best, best_key = float(candidate), key
    return round(best, 4)


def choose_threshold_capped(
    labels: np.ndarray,
    probabilities: np.ndarray,
    groups: np.ndarray,
    *,
    max_false_positive_rate: float = 0.05,
) -> float:
    """The cut that maximises balanced accuracy averaged over `groups` (data sources), among the cuts that
    flag at most `max_false_positive_rate` of the real examples of *every* group.

    A real face called fake is the error that costs a newsroom most, and one real source with a high
    false-positive rate is a whole kind of photo the platform cannot be trusted on; averaging per group keeps
    a large source from outvoting a small one. Groups with no real (or no fake) example only count for the
    rate they have. Ties: the cut nearest 0.5.
    """
    labels = np.asarray(labels).astype(bool)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    groups = np.asarray(groups)
    names = sorted(set(groups.tolist()))
    candidates = np.unique(np.r_[probabilities, 0.5, 1.0])
    best, best_key = 1.0, (-1.0, 0.0)
    for candidate in candidates:
        predicted = probabilities >= candidate
        rates, within_cap = [], True
        for name in names:
            members = groups == name
            reals, fakes = members & ~labels, members & labels
            if reals.any():
                false_positive_rate = (predicted & reals).sum() / reals.sum()
                within_cap &= bool(false_positive_rate <= max_false_positive_rate + 1e-12)
                rates.append(1.0 - false_positive_rate)
            if fakes.any():
                rates.append((predicted & fakes).sum() / fakes.sum())
        if not within_cap:
            continue
        key = (float(np.mean(rates)), -abs(float(candidate) - 0.5))
        if key > best_key:
            best, best_key = float(candidate), key
    return round(best, 4)


def choose_uncertain_band(
    labels: np.ndarray,
    probabilities: np.ndarray,
    threshold: float,
    *,
    target_accuracy: float = 0.99,
    widest: tuple[float, float] = (0.15, 0.85),
    narrowest: tuple[float, float] = (0.35, 0.65),
) -> tuple[float, float]:
    """The narrowest band [low, high] around `threshold` outside which accuracy reaches `target_accuracy`.

    Answers outside the band are firm verdicts; inside it the platform says `uncertain`. The band never
    gets narrower than `narrowest` (calibrated probabilities near 0.5 are coin flips whatever the data set
    says) nor wider than `widest`.
    """
    labels = np.asarray(labels).astype(bool)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    low_limit = min(narrowest[0], threshold)
    high_limit = max(narrowest[1], threshold)
    for half_width in np.linspace(0.0, 0.5, 101):
        low = min(low_limit, threshold - half_width)
        high = max(high_limit, threshold + half_width)
        # The band always contains the threshold, even one outside `widest` (a cut capped for false positives).
        low, high = min(max(low, widest[0]), threshold), max(min(high, widest[1]), threshold)
        firm = (probabilities <= low) | (probabilities >= high)
        if not firm.any():
            break
        correct = (probabilities[firm] >= threshold) == labels[firm]
        if correct.mean() >= target_accuracy or (low <= widest[0] and high >= widest[1]):
            return round(float(low), 4), round(float(high), 4)
    return min(widest[0], threshold), max(widest[1], threshold)


def cap_real_verdicts(
    labels: np.ndarray, probabilities: np.ndarray, groups: np.ndarray, low: float, *, max_miss_rate: float = 0.05
) -> float:
    """The band's lower edge, lowered until at most `max_miss_rate` of every group's fakes fall at or below it.

    A `real` verdict is the one a reviewer acts on without looking, so it is held per source, as the threshold
    is held to a false-positive rate per real source: the source whose fakes the model scores lowest (face
    swaps) decides how low a score must be before the platform says `real`.
    """
    labels = np.asarray(labels).astype(bool)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    groups = np.asarray(groups)
    edge = float(low)
    for group in np.unique(groups):
        fakes = np.sort(probabilities[(groups == group) & labels])
        if not len(fakes):
            continue
        allowed = int(np.floor(max_miss_rate * len(fakes)))  # how many of this group's fakes may be called real
        if allowed < len(fakes) and fakes[allowed] <= edge:
            # Just under the first fake past the allowance: it and every fake above it stay out of `real`.
            edge = float(np.nextafter(fakes[allowed], -np.inf))
    # Rounded down, as settings store it: rounding up could put the first excluded fake back under the edge.
    return math.floor(max(edge, 0.0) * 1e6) / 1e6
