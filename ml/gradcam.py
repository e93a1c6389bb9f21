"""Grad-CAM heatmaps: which parts of a face crop pushed the image model's fake logit up.

Pure TensorFlow/Keras, no Django. Grad-CAM (Selvaraju et al., 2017) weights the last spatial feature map
by the gradient of the output with respect to it, averaged over space, keeps the positive part and scales
it to [0, 1]. The map is coarse (the feature map's resolution, e.g. 8x8 for a 128 px crop), so it is
upsampled to the crop's size before it is drawn.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

# Blue (cold, did not push towards "fake") to red (hot, pushed towards "fake"), like most Grad-CAM figures.
_COLORMAP = 2  # cv2.COLORMAP_JET, named here so this module imports OpenCV only when it draws
DEFAULT_OVERLAY_ALPHA = 0.45


def find_last_spatial_layer(model) -> str:
    """The name of the last layer whose output is a (batch, height, width, channels) feature map.

    Looked up by output shape rather than by layer type, so convolutions wrapped in batch norm and
    activation layers (the map Grad-CAM wants is the activated one) and any conv flavour are found alike.
    Nested models are not descended into: their output counts as one layer. Raises ValueError when the
    model has no spatial layer besides its input.
    """
    input_names = {tensor.name for tensor in model.inputs}
    for layer in reversed(model.layers):
        if layer.__class__.__name__ == "InputLayer" or layer.name in input_names:
            continue
        output = getattr(layer, "output", None)
        shape = getattr(output, "shape", None)
        if shape is not None and len(shape) == 4 and all(dim is None or dim > 0 for dim in shape[1:]):
            return layer.name
    raise ValueError(f"model {model.name!r} has no layer with a 4-D (spatial) output to explain")


def gradcam_heatmaps(
    model,
    crops: np.ndarray,
    *,
    layer_name: str | None = None,
    output_index: int = 0,
    batch_size: int = 32,
    mirror: bool = False,
) -> np.ndarray:
    """Grad-CAM maps for `crops` (N x S x S x 3, the model's input range) as N x S x S float32 in [0, 1].

    `model` maps a crop batch to a fake logit per crop: the image model's classifier (one output), or the
    video model's frame encoder with `output_index=1` (its outputs are the embedding, then the logit). The
    explained output is that logit, so "hot" means "evidence for fake". A crop whose map is all zero (no
    region raised the logit) gets an all-zero heatmap rather than amplified noise.

    With `mirror` (a version that scores each face as the mean of it and its mirror image), the map of the
    mirrored crop is flipped back and averaged with the crop's own before scaling, so the heatmap explains the
    score the version gives, not one of its two views.
    """
    crops = np.asarray(crops)
    if crops.ndim != 4 or len(crops) == 0:
        size = crops.shape[1:3] if crops.ndim == 4 else (0, 0)
        return np.zeros((0, *size), dtype=np.float32)
    layer_name = layer_name or find_last_spatial_layer(model)
    explain = _explainer(model, layer_name, output_index)
    heatmaps = []
    for start in range(0, len(crops), batch_size):
        batch = crops[start : start + batch_size].astype(np.float32)
        maps = explain(batch).numpy()
        if mirror:
            maps = (maps + explain(batch[:, :, ::-1].copy()).numpy()[:, :, ::-1]) / 2
        heatmaps.extend(_normalised(single) for single in maps)
    return np.stack([_resized(heatmap, crops.shape[1], crops.shape[2]) for heatmap in heatmaps])


# Per model, its compiled explainers by (layer, output). Building the explainer model and tracing the
# gradient costs ~60 ms; a worker explains every scan with the same few models, so both are done once.
_explainers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_explainers_lock = threading.Lock()


def _explainer(model: Any, layer_name: str, output_index: int) -> Callable:
    """A compiled function: crop batch (float32) -> raw Grad-CAM maps (N x h x w, before normalising)."""
    import keras
    import tensorflow as tf

    key = (layer_name, output_index)
    with _explainers_lock:
        per_model = _explainers.setdefault(model, {})
        if key in per_model:
            return per_model[key]
        explainer = keras.Model(model.inputs, [model.get_layer(layer_name).output, model.outputs[output_index]])

        @tf.function(
            input_signature=[tf.TensorSpec([None, *(int(dim) for dim in model.inputs[0].shape[1:])], tf.float32)],
            reduce_retracing=True,
        )
        def explain(batch: Any) -> Any:
            with tf.GradientTape() as tape:
                feature_maps, logits = explainer(batch, training=False)
                explained = tf.reduce_sum(tf.reshape(logits, (tf.shape(logits)[0], -1))[:, 0])
            gradients = tape.gradient(explained, feature_maps)
            channel_weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
            return tf.nn.relu(tf.reduce_sum(channel_weights * feature_maps, axis=-1))

        per_model[key] = explain
        return explain


def overlay_heatmap(crop: np.ndarray, heatmap: np.ndarray, *, alpha: float = DEFAULT_OVERLAY_ALPHA) -> np.ndarray:
    """The crop (S x S x 3 uint8 RGB) with the heatmap drawn over it in colour, as uint8 RGB."""
    import cv2

    heatmap = _resized(np.asarray(heatmap, dtype=np.float32), crop.shape[0], crop.shape[1])
    coloured_bgr = cv2.applyColorMap(np.uint8(np.clip(heatmap, 0.0, 1.0) * 255), _COLORMAP)
    coloured = cv2.cvtColor(coloured_bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
    blended = (1.0 - alpha) * crop.astype(np.float32) + alpha * coloured
    return np.clip(blended, 0, 255).astype(np.uint8)


def _normalised(heatmap: np.ndarray) -> np.ndarray:
    peak = float(np.max(heatmap)) if heatmap.size else 0.0
    if not np.isfinite(peak) or peak <= 1e-12:
        return np.zeros_like(heatmap, dtype=np.float32)
    return (heatmap / peak).astype(np.float32)


def _resized(heatmap: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    if heatmap.shape[:2] == (height, width):
        return heatmap.astype(np.float32)
    return np.clip(cv2.resize(heatmap, (width, height), interpolation=cv2.INTER_CUBIC), 0.0, 1.0).astype(np.float32)
