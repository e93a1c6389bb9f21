"""How sharp a face crop is, and taking that cue away from training.

Within a source, real and fake faces often differ in focus for reasons that have nothing to do with the
manipulation: DFDC's swaps are blurrier than their real faces, the Celeb-DF clips' swaps sharper (the image
card's *Sharpness* section). A model that learns "blurry means fake" from one source ranks another backwards.
`SharpnessMatching` removes the cue at draw time: a training crop is blurred or downscaled, often, to a
sharpness drawn from the *other* class of its own source, so that within every source both classes span the
same range of focus and only what is local to a manipulation separates them. It only ever blurs, so the
sharper class comes down to the blurrier one's range; nothing is sharpened into a look no camera makes.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

# The centre of the crop: the face itself, not the margin's hair and background, whose focus says nothing
# about a manipulation.
CENTRE = 0.5


def sharpness_of(crop: np.ndarray) -> float:
    """Variance of the Laplacian of an RGB crop's grey centre: the usual focus measure (higher is sharper).
    The same figure for a uint8 crop and its float copy (a source being altered, not yet rounded)."""
    side = crop.shape[0]
    start, stop = int(side * (1 - CENTRE) / 2), int(side * (1 + CENTRE) / 2)
    grey = cv2.cvtColor(np.ascontiguousarray(crop[start:stop, start:stop]), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey.astype(np.float64), cv2.CV_64F).var())


def sharpness(crops: Iterable[np.ndarray]) -> np.ndarray:
    """`sharpness_of` each crop."""
    return np.asarray([sharpness_of(crop) for crop in crops], dtype=np.float64)


def _blurred(crop: np.ndarray, strength: float, downscale: bool) -> np.ndarray:
    """`crop` softened by `strength` in [0, 1]: a Gaussian blur (sigma up to 3) or a downscale to as little as
    a quarter of its side and back (what a small face in a large frame looks like)."""
    size = crop.shape[0]
    if downscale:
        small = max(8, int(round(size * (1.0 - 0.75 * strength))))
        return cv2.resize(cv2.resize(crop, (small, small), interpolation=cv2.INTER_AREA), (size, size))
    return cv2.GaussianBlur(crop, (0, 0), sigmaX=0.2 + 2.8 * strength)


def _weakest_reaching(filtered, target: float, *, softer: bool, iterations: int) -> np.ndarray:
    """`filtered(strength)` at about the weakest strength in [0, 1] whose sharpness reaches `target` (at or
    under it when `softer`, at or over it otherwise), by bisection; the strongest where none does."""
    low, high = 0.0, 1.0
    best = filtered(high)
    for _ in range(iterations):
        middle = (low + high) / 2
        candidate = filtered(middle)
        if (sharpness_of(candidate) <= target) == softer:
            high, best = middle, candidate
        else:
            low = middle
    return best


def soften_to(crop: np.ndarray, target: float, *, downscale: bool, iterations: int = 6) -> np.ndarray:
    """`crop` blurred (or downscaled and back, with `downscale`) just enough that its sharpness is about
    `target`; unchanged when it is already at or under it."""
    if sharpness_of(crop) <= target:
        return crop
    return _weakest_reaching(
        lambda strength: _blurred(crop, strength, downscale), target, softer=True, iterations=iterations
    )


def unsharp_mask(crop: np.ndarray, amount: float) -> np.ndarray:
    """The crop plus `amount` times its detail above a sigma-1 blur (0 leaves it as it is); same dtype out (uint8
    saturates)."""
    blurred = cv2.GaussianBlur(crop, (0, 0), sigmaX=1.0)
    return cv2.addWeighted(crop, 1.0 + amount, blurred, -amount, 0)


def refocus(crop: np.ndarray, target: float, *, mask: np.ndarray | None = None, iterations: int = 7) -> np.ndarray:
    """A float32 copy of `crop` blurred (Gaussian, sigma up to 3) or unsharp-masked (amount up to 4) until its
    sharpness is about `target`; with `mask` (H x W in [0, 1]) only there, blended by
    it. A target beyond reach gets the strongest filter."""
    image = np.asarray(crop, dtype=np.float32)
    weight = None if mask is None else np.asarray(mask, dtype=np.float32)[..., None]
    start = sharpness_of(image)
    if start <= 0 or abs(start - target) <= 0.02 * target:
        return image
    softer = target < start

    def filtered(strength: float) -> np.ndarray:
        if softer:
            changed = cv2.GaussianBlur(image, (0, 0), sigmaX=0.05 + 2.95 * strength)
        else:
            changed = unsharp_mask(image, 4.0 * strength)
        return changed if weight is None else changed * weight + image * (1.0 - weight)

    return _weakest_reaching(filtered, target, softer=softer, iterations=iterations)


class SharpnessMatching:
    """Per (source, class), the sharpness of the crops a training stage draws from; `apply` softens a drawn crop
    of one class to a sharpness drawn from the other class of the same source, with `probability`.

    With probability 1 the sharper class's distribution becomes about the pointwise minimum of the two, which the
    blurrier class already nearly has; a little under 1 keeps some crops at their own focus.
    """

    def __init__(self, sources: np.ndarray, labels: np.ndarray, values: np.ndarray, *, probability: float) -> None:
        self.probability = probability
        self._values = {
            (str(source), int(label)): np.sort(values[(sources == source) & (labels == label)])
            for source in np.unique(sources)
            for label in (0, 1)
        }

    @classmethod
    def of_rows(cls, crops: np.ndarray, sources: np.ndarray, labels: np.ndarray, *, probability: float):
        return cls(np.asarray(sources), np.asarray(labels), sharpness(crops), probability=probability)

    def medians(self) -> dict[str, dict[str, float]]:
        """Median sharpness per source and class, for the run's log."""
        table: dict[str, dict[str, float]] = {}
        for (source, label), values in self._values.items():
            if len(values):
                table.setdefault(source, {})["fake" if label else "real"] = round(float(np.median(values)), 1)
        return table

    def apply(self, crop: np.ndarray, source: str, label: int, rng: np.random.Generator) -> np.ndarray:
        if self.probability <= 0 or rng.random() >= self.probability:
            return crop
        others = self._values.get((str(source), 1 - int(label)))
        if others is None or len(others) == 0:
            return crop
        target = float(others[int(rng.integers(len(others)))])
        return soften_to(crop, target, downscale=rng.random() < 0.5)
