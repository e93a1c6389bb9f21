"""The image model: a small separable-convolution CNN over face crops giving a fake logit and an embedding.

The network ends in an `embedding` layer (the per-frame features the video model consumes) and a linear
`logit` layer; probabilities come from Platt scaling of that logit with the scale and bias stored in the
version's settings, so calibration can change without retraining.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ml.errors import ModelError
from ml.faces import CropRule
from ml.metrics import sigmoid

EMBEDDING_LAYER = "embedding"
LOGIT_LAYER = "logit"
# Keras' default (0.99) leaves the moving statistics far from the batch statistics after the few hundred
# steps a CPU run affords, and the model then collapses at inference; 0.9 converges within an epoch.
BN_MOMENTUM = 0.9


def build_image_model(
    *,
    input_size: int = 128,
    embedding_dim: int = 128,
    widths: tuple[int, ...] = (48, 96, 160, 256),
    dropout: float = 0.3,
    seed: int = 0,
):
    """A fresh (untrained) image model: uint8-range RGB crops in, one fake logit out.

    A strided stem, then one stage per entry of `widths` (two depthwise-separable convolutions with batch
    norm, then max-pooling except after the last), global average pooling, the embedding layer and the logit.
    Separable convolutions keep it at a few hundred thousand parameters: a 1-3 MB file, trainable on 2 CPU cores.
    """
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(input_size, input_size, 3), name="face")
    features = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
    features = layers.Conv2D(widths[0] // 2, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(features)
    features = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(features)
    features = layers.Activation("relu", name="stem_relu")(features)
    for stage, width in enumerate(widths):
        for block in range(2):
            name = f"stage{stage}_{block}"
            features = layers.SeparableConv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv")(features)
            features = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(features)
            features = layers.Activation("relu", name=f"{name}_relu")(features)
        if stage < len(widths) - 1:
            features = layers.MaxPooling2D(2, name=f"stage{stage}_pool")(features)
    features = layers.GlobalAveragePooling2D(name="pool")(features)
    features = layers.Dropout(dropout, name="pool_dropout")(features)
    embedding = layers.Dense(embedding_dim, activation="relu", name=EMBEDDING_LAYER)(features)
    features = layers.Dropout(dropout, name="embedding_dropout")(embedding)
    logit = layers.Dense(1, name=LOGIT_LAYER)(features)
    return keras.Model(inputs, logit, name="unmask_image")


def feature_model(classifier):
    """The same weights, answering (embedding, logit) in one call."""
    import keras

    return keras.Model(
        classifier.inputs,
        [classifier.get_layer(EMBEDDING_LAYER).output, classifier.get_layer(LOGIT_LAYER).output],
        name=f"{classifier.name}_features",
    )


def load_keras_model(weights_path: str | os.PathLike):
    """Load a `.keras` file, turning every failure into ModelError with the path in the message."""
    import keras

    if not os.path.isfile(weights_path):
        raise ModelError(f"weights file not found: {weights_path}")
    try:
        return keras.saving.load_model(weights_path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types (ValueError, OSError, zip errors) for a bad file.
        raise ModelError(f"cannot load weights {weights_path}: {exc}") from exc


@dataclass
class FacePredictions:
    """Per-crop outputs of the image model."""

    logits: np.ndarray  # (N,)
    probabilities: np.ndarray  # (N,), calibrated
    embeddings: np.ndarray  # (N, D)


class ImageModel:
    """A loaded image model with its settings (crop rule, calibration, decision band)."""

    def __init__(self, classifier, settings: dict) -> None:
        self.classifier = classifier
        self.settings = dict(settings)
        self.crop_rule = CropRule.from_dict(settings.get("crop_rule"))
        input_size = int(classifier.inputs[0].shape[1])
        if input_size != self.crop_rule.size:
            raise ModelError(f"model input is {input_size}px but the crop rule says {self.crop_rule.size}px")
        calibration = settings.get("calibration") or {}
        self.calibration_scale = float(calibration.get("scale", 1.0))
        self.calibration_bias = float(calibration.get("bias", 0.0))
        self._features = feature_model(classifier)
        self.embedding_dim = int(self._features.outputs[0].shape[-1])

    @classmethod
    def load(cls, weights_path: str | os.PathLike, settings: dict) -> ImageModel:
        return cls(load_keras_model(weights_path), settings)

    def calibrate(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(self.calibration_scale * np.asarray(logits, dtype=np.float64) + self.calibration_bias)

    def predict(self, crops: np.ndarray, *, batch_size: int = 64) -> FacePredictions:
        """Logits, calibrated fake probabilities and embeddings for N crops (N x S x S x 3 uint8), batched."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or len(crops) == 0:
            return FacePredictions(
                logits=np.zeros(0), probabilities=np.zeros(0), embeddings=np.zeros((0, self.embedding_dim))
            )
        embeddings, logits = [], []
        for start in range(0, len(crops), batch_size):
            batch = crops[start : start + batch_size].astype(np.float32)
            batch_embeddings, batch_logits = self._features([batch], training=False)
            embeddings.append(np.asarray(batch_embeddings))
            logits.append(np.asarray(batch_logits).reshape(-1))
        all_logits = np.concatenate(logits).astype(np.float64)
        return FacePredictions(
            logits=all_logits,
            probabilities=self.calibrate(all_logits),
            embeddings=np.concatenate(embeddings).astype(np.float32),
        )
