"""Training-time augmentation of face crops, applied identically to both classes.

The data set's classes differ in file properties (size, JPEG quality, sharpness, framing) as well as in
the faces. Each crop is therefore randomly re-framed, rescaled down and up, blurred, colour-jittered,
flipped and re-compressed as JPEG at a random quality, so none of those cues separates real from fake and
the model has to look at the face itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ml.sharpness import unsharp_mask


@dataclass(frozen=True)
class AugmentConfig:
    reframe_probability: float = 0.7
    reframe_zoom: tuple[float, float] = (0.85, 1.0)
    # Bars over two opposite edges (letterboxed video, a portrait padded to a square, a screenshot), each bar
    # `border_fraction` of the side: both classes get them, so framing cannot stand in for the face.
    border_probability: float = 0.0
    border_fraction: tuple[float, float] = (0.04, 0.18)
    flip_probability: float = 0.5
    rescale_probability: float = 0.6
    rescale_factor: tuple[float, float] = (0.3, 1.0)
    blur_probability: float = 0.3
    blur_sigma: tuple[float, float] = (0.3, 1.6)
    sharpen_probability: float = 0.15
    colour_probability: float = 0.8
    grey_probability: float = 0.05
    noise_probability: float = 0.2
    jpeg_probability: float = 0.8
    jpeg_quality: tuple[int, int] = (30, 96)


# For the self-blended frame encoder (ml/self_blend.py) both classes come from the same files, so there is no
# file-property shortcut to defeat; what must survive is the blending seam, which heavy downscaling, blur and
# low-quality JPEG erase. Lighter degradations, in the range of video compression, keep it learnable.
SELF_BLEND_AUGMENT = AugmentConfig(
    rescale_probability=0.25,
    rescale_factor=(0.6, 1.0),
    blur_probability=0.1,
    blur_sigma=(0.3, 0.8),
    sharpen_probability=0.05,
    noise_probability=0.1,
    jpeg_probability=0.6,
    jpeg_quality=(60, 98),
)


def augment_crop(crop: np.ndarray, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """One randomly degraded copy of an RGB uint8 crop, same size."""
    size = crop.shape[0]
    image = crop
    if rng.random() < config.reframe_probability:
        # Detector boxes jitter between images and frames: zoom in slightly and shift.
        zoom = rng.uniform(*config.reframe_zoom)
        side = max(8, int(round(size * zoom)))
        left = int(rng.integers(0, size - side + 1))
        top = int(rng.integers(0, size - side + 1))
        image = cv2.resize(image[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < config.border_probability:
        image = add_bars(image, rng.uniform(*config.border_fraction), vertical=rng.random() < 0.5, rng=rng)
    if rng.random() < config.flip_probability:
        image = image[:, ::-1]
    if rng.random() < config.rescale_probability:
        factor = rng.uniform(*config.rescale_factor)
        small = max(8, int(round(size * factor)))
        down = cv2.INTER_AREA if rng.random() < 0.5 else cv2.INTER_LINEAR
        up = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_NEAREST)[int(rng.integers(0, 3))]
        image = cv2.resize(cv2.resize(image, (small, small), interpolation=down), (size, size), interpolation=up)
    if rng.random() < config.blur_probability:
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=rng.uniform(*config.blur_sigma))
    elif rng.random() < config.sharpen_probability:
        image = unsharp_mask(image, 0.5)
    image = np.ascontiguousarray(image, dtype=np.float32)
    if rng.random() < config.colour_probability:
        brightness = rng.uniform(-25.0, 25.0)
        contrast = rng.uniform(0.75, 1.25)
        saturation = rng.uniform(0.6, 1.4)
        channel_gain = rng.uniform(0.92, 1.08, size=3)
        grey = image.mean(axis=2, keepdims=True)
        image = grey + (image - grey) * saturation
        image = (image - image.mean()) * contrast + image.mean() + brightness
        image = image * channel_gain
    if rng.random() < config.grey_probability:
        image = np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2)
    if rng.random() < config.noise_probability:
        image = image + rng.normal(0.0, rng.uniform(1.0, 6.0), size=image.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)
    if rng.random() < config.jpeg_probability:
        quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
        ok, encoded = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1]
    return np.ascontiguousarray(image)


def add_bars(image: np.ndarray, fraction: float, *, vertical: bool, rng: np.random.Generator) -> np.ndarray:
    """The crop with near-black bars of `fraction` of its side over both left and right edges (`vertical`) or
    top and bottom: what a detector's crop of a letterboxed or padded picture looks like."""
    size = image.shape[0]
    width = max(1, int(round(size * fraction)))
    barred = image.copy()
    shade = int(rng.integers(0, 24))
    if vertical:
        barred[:, :width] = shade
        barred[:, size - width :] = shade
    else:
        barred[:width] = shade
        barred[size - width :] = shade
    return barred


def augment_batch(crops: np.ndarray, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    return np.stack([augment_crop(crop, rng, config) for crop in crops])
