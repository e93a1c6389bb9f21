"""The map from a network's raw logit to a calibrated one, as stored in a version's settings.

Two forms, both monotone (calibration never reorders faces, so ROC-AUC is the network's own):

- **Platt** (`{"scale", "bias"}`): `scale * logit + bias`. One slope for every kind of fake: right when the
  classes' logits overlap alike everywhere, and what v1 and the video model's own aggregates use.
- **Isotonic** (`{"method": "isotonic", "knots": [[logit...], [calibrated logit...]], "tail_slope"}`): a
  weighted isotonic regression (pool-adjacent-violators) of the labels on the logit, kept as the blocks'
  centroids and joined by straight lines in logit space, with the Platt slope beyond the outermost knots so that
  faces past them keep their order. The image model v2 needs it: GAN and diffusion fakes sit at logits near +20
  and face swaps near +2, and one Platt slope fitted to both left DFDC's probabilities bunched around 0.3-0.6
  and StyleGAN's under-confident (pooled ECE 0.08 on the photo test splits, 0.03 with this).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ml.metrics import fit_platt, logit, sigmoid

# Calibrated probabilities of the isotonic knots stay within [FLOOR, 1 - FLOOR]: a calibration set of about a
# thousand faces cannot support a more confident figure than that.
ISOTONIC_FLOOR = 0.005


@dataclass(frozen=True)
class LogitCalibration:
    """A monotone map of raw logits to calibrated logits (`logits`) and fake probabilities (`probabilities`)."""

    scale: float = 1.0
    bias: float = 0.0
    knots: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (raw logits, calibrated logits), increasing

    @classmethod
    def from_settings(cls, calibration: dict | None) -> LogitCalibration:
        """The calibration a version's settings describe (missing: the identity)."""
        calibration = calibration or {}
        if calibration.get("method") == "isotonic":
            raw, calibrated = calibration["knots"]
            return cls(
                scale=float(calibration["tail_slope"]),
                knots=(tuple(float(value) for value in raw), tuple(float(value) for value in calibrated)),
            )
        return cls(scale=float(calibration.get("scale", 1.0)), bias=float(calibration.get("bias", 0.0)))

    @property
    def method(self) -> str:
        return "isotonic" if self.knots is not None else "platt"

    def to_settings(self) -> dict:
        if self.knots is None:
            return {"method": "platt", "scale": round(self.scale, 6), "bias": round(self.bias, 6)}
        return {
            "method": "isotonic",
            "knots": [[round(value, 6) for value in self.knots[0]], [round(value, 6) for value in self.knots[1]]],
            "tail_slope": round(self.scale, 6),
        }

    def logits(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float64)
        if self.knots is None:
            return self.scale * raw + self.bias
        xs, ys = (np.asarray(values, dtype=np.float64) for values in self.knots)
        inside = np.interp(raw, xs, ys)
        below = ys[0] + self.scale * (raw - xs[0])
        above = ys[-1] + self.scale * (raw - xs[-1])
        return np.where(raw < xs[0], below, np.where(raw > xs[-1], above, inside))

    def probabilities(self, raw: np.ndarray) -> np.ndarray:
        return sigmoid(self.logits(raw))


def fit_isotonic_calibration(
    raw: np.ndarray, labels: np.ndarray, *, weights: np.ndarray | None = None, floor: float = ISOTONIC_FLOOR
) -> LogitCalibration:
    """The isotonic calibration of `raw` logits to `labels` (weighted: every source can count the same).

    Scores that do not rank the classes at all collapse to one block; with fewer than two knots left there is
    no shape to keep, and every face gets the base rate (scale 0), as `fit_platt` answers such scores.
    """
    raw = np.asarray(raw, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    weights = np.ones_like(raw) if weights is None else np.asarray(weights, dtype=np.float64)
    tail_slope, _ = fit_platt(raw, labels, weights=weights)
    # Equal logits are one point: their labels are pooled before any block is formed.
    unique, inverse = np.unique(raw, return_inverse=True)
    point_weights = np.bincount(inverse, weights=weights)
    point_labels = np.bincount(inverse, weights=weights * labels) / np.maximum(point_weights, 1e-12)
    # Pool adjacent violators: blocks of (weighted mean label, total weight, weighted sum of logits).
    values: list[float] = []
    totals: list[float] = []
    sums: list[float] = []
    for x, y, w in zip(unique, point_labels, point_weights, strict=True):
        values.append(float(y))
        totals.append(float(w))
        sums.append(float(w * x))
        while len(values) > 1 and values[-2] >= values[-1]:
            weight = totals[-2] + totals[-1]
            values[-2] = (values[-2] * totals[-2] + values[-1] * totals[-1]) / weight
            totals[-2], sums[-2] = weight, sums[-2] + sums[-1]
            del values[-1], totals[-1], sums[-1]
    centres = np.asarray(sums) / np.maximum(np.asarray(totals), 1e-12)
    calibrated = np.clip(np.asarray(values), floor, 1.0 - floor)
    # Blocks clipped to the floor or the ceiling become one knot each (the innermost), so the map stays increasing.
    keep = np.ones(len(calibrated), dtype=bool)
    keep[np.flatnonzero(calibrated == calibrated[0])[:-1]] = False
    keep[np.flatnonzero(calibrated == calibrated[-1])[1:]] = False
    centres, calibrated = centres[keep], calibrated[keep]
    if len(centres) < 2 or tail_slope <= 0 or not math.isfinite(tail_slope):
        # Scores that do not rank the classes: answer the (weighted) base rate for every face.
        base_rate = float(np.clip(np.sum(weights * labels) / max(float(np.sum(weights)), 1e-12), floor, 1 - floor))
        return LogitCalibration(scale=0.0, bias=float(logit(np.array([base_rate]))[0]))
    return LogitCalibration(scale=tail_slope, knots=(tuple(centres.tolist()), tuple(logit(calibrated).tolist())))
