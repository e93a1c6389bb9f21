"""The image model: a CNN over face crops giving a fake logit, an embedding and (v2) a manipulation type.

Every backbone ends in the same head: an `embedding` layer (the per-frame features the video model
consumes), a linear `logit` layer and, for models trained on labelled sources, a softmax `manipulation`
layer saying which kind of fake the face most resembles (`MANIPULATION_TYPES`). Probabilities come from
the calibration of the logit stored in the version's settings (`ml.calibration`: isotonic for v2, Platt for
v1), so calibration can change without retraining. The verdict comes from that probability alone; the manipulation type is
evidence beside it.

Backbones are entries of `BACKBONES`, named in a version's settings (`architecture.backbone`), so a new one
is a new entry rather than a new code path (DeepfakeBench's detector registry).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.calibration import LogitCalibration
from ml.errors import ModelError
from ml.faces import CropRule

EMBEDDING_LAYER = "embedding"
LOGIT_LAYER = "logit"
MANIPULATION_LAYER = "manipulation"
# What the second head tells apart, from the source labels training knows: a face pasted into real footage
# (DFDC, FaceForensics++, Celeb-DF, self-blended faces), a GAN portrait (StyleGAN) or a diffusion portrait.
MANIPULATION_TYPES = ("face_swap", "gan", "diffusion")
# Keras' default (0.99) leaves the moving statistics far from the batch statistics after the few hundred
# steps a CPU run affords, and the model then collapses at inference; 0.9 converges within an epoch.
BN_MOMENTUM = 0.9


def build_image_model(
    *,
    input_size: int = 128,
    embedding_dim: int = 128,
    widths: tuple[int, ...] = (48, 96, 160, 256),
    dropout: float = 0.3,
    manipulation_types: tuple[str, ...] = (),
    seed: int = 0,
):
    """A fresh (untrained) separable CNN trained from scratch: uint8-range RGB crops in, a fake logit out
    (and, with `manipulation_types`, the manipulation-type probabilities as a second output).

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
    pooled = layers.GlobalAveragePooling2D(name="pool")(features)
    return _with_head(inputs, pooled, embedding_dim, dropout, manipulation_types, name="unmask_image")


def build_mobilenet_v2_model(
    *,
    backbone_weights: str | os.PathLike,
    input_size: int = 160,
    embedding_dim: int = 128,
    dropout: float = 0.3,
    trainable_from: str | None = "block_6_expand",
    manipulation_types: tuple[str, ...] = MANIPULATION_TYPES,
    seed: int = 0,
):
    """An ImageNet-pretrained MobileNetV2 (weights from `backbone_weights`, an `include_top=False` file)
    with the shared head.

    The backbone's layers are inlined into one functional graph (not nested), so Grad-CAM and the feature
    model can name any of its layers. Its batch-norm layers are frozen, i.e. run with their ImageNet moving
    statistics in training too: Keras's MobileNetV2 uses momentum 0.999, so statistics re-estimated over the
    few thousand steps a CPU run affords lag far behind the weights (a measured fine-tune fell from ROC-AUC
    0.79 to 0.58 with them left training). Layers before `trainable_from` stay frozen as well: the early,
    high-resolution blocks cost most of the backward pass on a CPU and are generic edge and texture filters.
    """
    from keras import layers

    inputs, backbone = imagenet_mobilenet_v2(backbone_weights, input_size, trainable_from, seed=seed)
    features = layers.GlobalAveragePooling2D(name="pool")(backbone.output)
    return _with_head(inputs, features, embedding_dim, dropout, manipulation_types, name="unmask_image_mnv2")


def build_mobilenet_v2_local_model(
    *,
    backbone_weights: str | os.PathLike,
    input_size: int = 160,
    embedding_dim: int = 128,
    dropout: float = 0.3,
    trainable_from: str | None = "block_3_expand",
    cut_at: str = "block_6_expand_relu",
    patch_width: int = 256,
    manipulation_types: tuple[str, ...] = MANIPULATION_TYPES,
    seed: int = 0,
):
    """The ImageNet MobileNetV2 cut after its stride-8 blocks: a detector that only sees small patches.

    Each position of the `cut_at` map (20x20 at 160 px after `block_6_expand_relu`) sees a 59-pixel patch of
    the crop; a 1x1 convolution turns each into a patch feature, and the shared head reads their mean. So
    the face's score is an average of local evidence (texture, noise, a blending seam) and cannot rest on the
    whole face's look: the pose, lighting and framing by which the full network learns, say, that FFHQ-like
    portraits are StyleGAN fakes (image card, *Leave-one-source-out*). That limited receptive fields carry
    over to generators a detector never saw is Chai et al.'s finding ("What makes fake images detectable?
    Understanding properties that generalize", ECCV 2020). Batch norm stays frozen as in
    `build_mobilenet_v2_model`; Grad-CAM reads the patch features, a finer map (20x20) than the full
    network's 5x5.
    """
    from keras import layers

    inputs, backbone = imagenet_mobilenet_v2(backbone_weights, input_size, trainable_from, last_layer=cut_at, seed=seed)
    patches = layers.Conv2D(patch_width, 1, activation="relu", name="patch_features")(backbone.get_layer(cut_at).output)
    pooled = layers.GlobalAveragePooling2D(name="pool")(patches)
    return _with_head(inputs, pooled, embedding_dim, dropout, manipulation_types, name="unmask_image_mnv2_local")


def imagenet_mobilenet_v2(
    backbone_weights: str | os.PathLike,
    input_size: int,
    trainable_from: str | None,
    *,
    last_layer: str | None = None,
    seed: int,
):
    """The face input and the ImageNet MobileNetV2 over it, its layers inlined into one graph, trainable from
    `trainable_from` (every layer when None) up to `last_layer` (the last one when None), batch norm frozen."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(input_size, input_size, 3), name="face")
    # MobileNetV2's own preprocessing (pixels to [-1, 1]), inside the model so callers pass uint8-range crops.
    scaled = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
    backbone = keras.applications.MobileNetV2(
        alpha=1.0, include_top=False, weights=str(backbone_weights), input_tensor=scaled
    )
    names = [layer.name for layer in backbone.layers]
    if last_layer is not None and last_layer not in names:
        raise ValueError(f"MobileNetV2 has no layer named {last_layer!r} to cut at")
    used = names[: names.index(last_layer) + 1] if last_layer else names
    if trainable_from is not None and trainable_from not in used:
        raise ValueError(f"MobileNetV2 has no layer named {trainable_from!r} to train from")
    trainable = trainable_from is None
    for layer in backbone.layers:
        if layer.name == trainable_from:
            trainable = True
        layer.trainable = trainable and not isinstance(layer, layers.BatchNormalization)
    return inputs, backbone


def _with_head(inputs, pooled, embedding_dim: int, dropout: float, manipulation_types: tuple[str, ...], *, name: str):
    """The shared head over pooled backbone features: embedding, fake logit, optional manipulation softmax."""
    import keras
    from keras import layers

    features = layers.Dropout(dropout, name="pool_dropout")(pooled)
    embedding = layers.Dense(embedding_dim, activation="relu", name=EMBEDDING_LAYER)(features)
    features = layers.Dropout(dropout, name="embedding_dropout")(embedding)
    logit = layers.Dense(1, name=LOGIT_LAYER)(features)
    if not manipulation_types:
        return keras.Model(inputs, logit, name=name)
    manipulation = layers.Dense(len(manipulation_types), activation="softmax", name=MANIPULATION_LAYER)(features)
    return keras.Model(inputs, [logit, manipulation], name=name)


# Backbones by the name a version's settings give (`architecture.backbone`); each takes the keyword
# arguments its builder documents.
BACKBONES = {
    "separable_cnn": build_image_model,
    "mobilenet_v2": build_mobilenet_v2_model,
    "mobilenet_v2_local": build_mobilenet_v2_local_model,
}
# The backbones initialised from the shared ImageNet MobileNetV2 file (`--backbone-weights`), each with the
# first layer its training fine-tunes by default: read from its builder's `trainable_from`, so the two agree.
PRETRAINED_BACKBONES = {
    name: inspect.signature(BACKBONES[name]).parameters["trainable_from"].default
    for name in ("mobilenet_v2", "mobilenet_v2_local")
}


def has_manipulation_head(classifier) -> bool:
    return any(layer.name == MANIPULATION_LAYER for layer in classifier.layers)


def feature_model(classifier):
    """The same weights, answering (embedding, logit) in one call, plus the manipulation-type
    probabilities when the classifier has that head."""
    import keras

    outputs = [classifier.get_layer(EMBEDDING_LAYER).output, classifier.get_layer(LOGIT_LAYER).output]
    if has_manipulation_head(classifier):
        outputs.append(classifier.get_layer(MANIPULATION_LAYER).output)
    return keras.Model(classifier.inputs, outputs, name=f"{classifier.name}_features")


def weights_digest(model) -> str:
    """A fingerprint of what a Keras model computes: sha256 over its layers' classes and its weights (shape,
    dtype and bytes, in order). A video version records its frame encoder's, so that a worker already holding
    the image model that encoder was copied from can use that one copy (`VideoModel.load(..., image_model=)`)
    instead of loading and compiling a second."""
    import hashlib

    digest = hashlib.sha256()
    for layer in model.layers:
        digest.update(type(layer).__name__.encode())
    for weights in model.get_weights():
        digest.update(f"{weights.dtype.str}{weights.shape}".encode())
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()


def require_weights_file(weights_path: str | os.PathLike) -> None:
    """ModelError unless a version's weights file is there (also where its network is taken from elsewhere)."""
    if not os.path.isfile(weights_path):
        raise ModelError(f"weights file not found: {weights_path}")


def load_keras_model(weights_path: str | os.PathLike):
    """Load a `.keras` file, turning every failure into ModelError with the path in the message."""
    import keras

    require_weights_file(weights_path)
    try:
        return keras.saving.load_model(weights_path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types (ValueError, OSError, zip errors) for a bad file.
        raise ModelError(f"cannot load weights {weights_path}: {exc}") from exc


def encode_in_batches(
    forward: Callable[[np.ndarray], Sequence[Any]],
    crops: np.ndarray,
    *,
    embedding_dim: int,
    batch_size: int = 64,
    mirror: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The one batched forward pass over face crops, whichever way the model runs (eager Keras or compiled).

    `forward` maps a float32 batch to the model's outputs: embedding, fake logit and, for a model with the
    second head, the manipulation-type probabilities. Returns embeddings (N x D float32), raw logits (N
    float64) and the probabilities (N x K float64, None without the head); an empty input gives empty arrays.

    With `mirror` (a version's `test_time_flip` setting), every crop is also scored mirrored left to right, in
    the same forward call, and each output is the mean of the two views: the logit a version with that setting
    was calibrated on (image card, *Test-time flipping*).
    """
    crops = np.asarray(crops)
    if crops.ndim != 4 or len(crops) == 0:
        return np.zeros((0, embedding_dim), dtype=np.float32), np.zeros(0), None
    if mirror:
        # Half the crops per call, so that a call still holds `batch_size` crops with their mirrors.
        batch_size = max(1, batch_size // 2)
    embeddings, logits, manipulation = [], [], []
    for start in range(0, len(crops), batch_size):
        batch = crops[start : start + batch_size].astype(np.float32)
        if mirror:
            outputs = [_mean_of_views(np.asarray(output), len(batch)) for output in forward(_with_mirrors(batch))]
        else:
            outputs = forward(batch)
        embeddings.append(np.asarray(outputs[0]))
        logits.append(np.asarray(outputs[1]).reshape(-1))
        if len(outputs) > 2:
            manipulation.append(np.asarray(outputs[2]))
    return (
        np.concatenate(embeddings).astype(np.float32),
        np.concatenate(logits).astype(np.float64),
        np.concatenate(manipulation).astype(np.float64) if manipulation else None,
    )


def _with_mirrors(batch: np.ndarray) -> np.ndarray:
    """The batch followed by each of its crops mirrored left to right (N -> 2N crops)."""
    return np.concatenate([batch, batch[:, :, ::-1]])


def _mean_of_views(output: np.ndarray, count: int) -> np.ndarray:
    """Per crop, the mean of an output over the crop and its mirror (the halves `_with_mirrors` made)."""
    return (output[:count] + output[count:]) / 2


@dataclass
class FacePredictions:
    """Per-crop outputs of the image model."""

    logits: np.ndarray  # (N,)
    probabilities: np.ndarray  # (N,), calibrated
    embeddings: np.ndarray  # (N, D)
    # (N, len(manipulation_types)) softmax of the manipulation head; None for a model without one (v1).
    manipulation: np.ndarray | None = None

    def slice(self, start: int, end: int) -> FacePredictions:
        return FacePredictions(
            logits=self.logits[start:end],
            probabilities=self.probabilities[start:end],
            embeddings=self.embeddings[start:end],
            manipulation=None if self.manipulation is None else self.manipulation[start:end],
        )


class ImageModel:
    """A loaded image model with its settings (crop rule, calibration, decision band)."""

    def __init__(self, classifier, settings: dict) -> None:
        self.classifier = classifier
        self.settings = dict(settings)
        self.crop_rule = CropRule.from_dict(settings.get("crop_rule"))
        input_size = int(classifier.inputs[0].shape[1])
        if input_size != self.crop_rule.size:
            raise ModelError(f"model input is {input_size}px but the crop rule says {self.crop_rule.size}px")
        self.calibration = LogitCalibration.from_settings(settings.get("calibration"))
        # Whether each face is scored as the mean of itself and its mirror image: a property of the version,
        # since its calibration and decision were fitted on the logits scored that way.
        self.test_time_flip = bool(settings.get("test_time_flip", False))
        self._features = feature_model(classifier)
        self.embedding_dim = int(self._features.outputs[0].shape[-1])
        self.manipulation_types: tuple[str, ...] = ()
        if has_manipulation_head(classifier):
            self.manipulation_types = tuple(settings.get("manipulation_types") or MANIPULATION_TYPES)
            if len(self.manipulation_types) != int(self._features.outputs[2].shape[-1]):
                raise ModelError("the model's manipulation head does not match its settings' manipulation_types")

    @classmethod
    def load(cls, weights_path: str | os.PathLike, settings: dict) -> ImageModel:
        return cls(load_keras_model(weights_path), settings)

    @property
    def features(self):
        """The classifier answering (embedding, logit[, manipulation]): what a video model's frame encoder is."""
        return self._features

    def calibrate(self, logits: np.ndarray) -> np.ndarray:
        return self.calibration.probabilities(logits)

    def predict(self, crops: np.ndarray, *, batch_size: int = 64) -> FacePredictions:
        """Logits, calibrated fake probabilities and embeddings for N crops (N x S x S x 3 uint8), batched.

        Keras runs eagerly here, layer by layer: the reference the compiled `ml.inference.ImageScorer` is tested
        against, and what training uses.
        """
        embeddings, logits, manipulation = encode_in_batches(
            lambda batch: self._features([batch], training=False),
            crops,
            embedding_dim=self.embedding_dim,
            batch_size=batch_size,
            mirror=self.test_time_flip,
        )
        return FacePredictions(
            logits=logits, probabilities=self.calibrate(logits), embeddings=embeddings, manipulation=manipulation
        )
