"""The video model: per-frame face scores of one tracked person combined into one probability.

A video version's `.keras` file is self-contained: it holds the frame encoder (a frozen copy of the image
model it was trained with, answering embedding, logit and manipulation type per crop) and, where the version
uses one, the sequence head (a GRU over the frames' features). Keeping them in one file means a later image
model can never be paired with a combination chosen on another model's scores.

Per track, up to three probabilities come out:
- `aggregate_probability`: a robust aggregate of the calibrated frame logits (`AGGREGATES`, named in the
  settings: a mean, a trimmed mean, the mean of the top quarter, or the share of frames over the frame
  threshold, i.e. N-of-M confirmation), Platt-calibrated on held-out videos;
- `sequence_probability`: the GRU on short clips of the track, averaged in logit space (v1, or where the
  training run found it helps);
- `fake_probability`: the aggregate alone when the version's sequence weight is 0, else their weighted mean
  in logit space, re-calibrated (Platt) on held-out videos.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ml.calibration import LogitCalibration
from ml.errors import ModelError
from ml.faces import CropRule
from ml.image_model import (
    MANIPULATION_TYPES,
    FacePredictions,
    ImageModel,
    encode_in_batches,
    load_keras_model,
    require_weights_file,
    weights_digest,
)
from ml.metrics import logit, sigmoid

FRAME_ENCODER = "frame_encoder"
SEQUENCE_HEAD = "sequence_head"


def sequence_features(embeddings: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Per-frame inputs of the sequence head: embedding, frame logit and the change of embedding since the
    previous frame (temporal flicker is what swaps and re-enactments leave behind)."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    logits = np.asarray(logits, dtype=np.float32).reshape(-1, 1)
    deltas = np.zeros_like(embeddings)
    if len(embeddings) > 1:
        deltas[1:] = embeddings[1:] - embeddings[:-1]
    return np.concatenate([embeddings, np.tanh(logits / 4.0), deltas], axis=1)


def build_sequence_head(*, feature_dim: int, units: int = 32, dropout: float = 0.3, seed: int = 0):
    """GRU over (time, feature_dim) inputs of any length, one fake logit out."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(None, feature_dim), name="frame_features")
    features = layers.LayerNormalization(name="norm")(inputs)
    features = layers.Dense(units, activation="relu", name="project")(features)
    features = layers.Dropout(dropout, name="project_dropout")(features)
    features = layers.GRU(units, name="gru")(features)
    features = layers.Dropout(dropout, name="gru_dropout")(features)
    logit_output = layers.Dense(1, name="sequence_logit")(features)
    return keras.Model(inputs, logit_output, name=SEQUENCE_HEAD)


def bundle_video_model(frame_encoder, sequence_head=None):
    """One Keras model holding the frame encoder and, where there is one, the sequence head, saved in one file."""
    import keras

    frame_encoder = keras.Model(frame_encoder.inputs, frame_encoder.outputs, name=FRAME_ENCODER)
    face_input = keras.Input(shape=frame_encoder.inputs[0].shape[1:], name="face")
    # embedding, frame logit[, manipulation-type probabilities]
    frame_outputs = list(frame_encoder(face_input))
    if sequence_head is None:
        return keras.Model(face_input, frame_outputs, name="unmask_video")
    sequence_input = keras.Input(shape=sequence_head.inputs[0].shape[1:], name="sequence")
    sequence_logit = sequence_head(sequence_input)
    return keras.Model([face_input, sequence_input], [*frame_outputs, sequence_logit], name="unmask_video")


def trimmed_mean(values: np.ndarray, trim: float) -> float:
    """Mean after dropping the `trim` fraction at each end (at least one value is kept)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    cut = int(np.floor(len(ordered) * trim))
    kept = ordered[cut : len(ordered) - cut] if len(ordered) - 2 * cut > 0 else ordered
    return float(kept.mean())


def top_quarter_mean(values: np.ndarray) -> float:
    """Mean of the highest quarter of the values (at least one): a swap that shows in part of a clip counts."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    return float(ordered[: max(1, int(np.ceil(len(ordered) / 4)))].mean())


def share_over(values: np.ndarray, cut: float) -> float:
    """The share of values at or above `cut`: "N of M frames look fake", as a number in [0, 1]."""
    values = np.asarray(values, dtype=np.float64)
    return float((values >= cut).mean()) if len(values) else 0.0


# How a person's calibrated frame logits become one number before the version's video calibration. Each takes
# the logits and the aggregate's settings; training picks one by held-out log-loss (`ml.train_video_crossfit`).
AGGREGATES = {
    "mean_logit": lambda logits, options: float(np.mean(logits)),
    "trimmed_mean_logit": lambda logits, options: trimmed_mean(logits, float(options.get("trim", 0.2))),
    "top_quarter_logit": lambda logits, options: top_quarter_mean(logits),
    "share_over_threshold": lambda logits, options: share_over(logits, float(options.get("frame_logit_cut", 0.0))),
}


def aggregate_frames(calibrated_logits: np.ndarray, options: dict) -> float:
    """The aggregate `options["method"]` names, of one person's calibrated frame logits."""
    method = options.get("method", "trimmed_mean_logit")
    if method not in AGGREGATES:
        raise ModelError(f"unknown frame aggregate {method!r}; known: {', '.join(AGGREGATES)}")
    return AGGREGATES[method](np.asarray(calibrated_logits, dtype=np.float64), options)


def clip_windows(length: int, clip_len: int, stride: int) -> list[tuple[int, int]]:
    """Start/end positions of the clips the sequence head reads (the whole track when it is shorter)."""
    if length <= clip_len:
        return [(0, length)]
    starts = list(range(0, length - clip_len + 1, max(1, stride)))
    if starts[-1] != length - clip_len:
        starts.append(length - clip_len)
    return [(start, start + clip_len) for start in starts]


def clip_logits(sequence_head, embeddings: np.ndarray, frame_logits: np.ndarray, *, clip_len: int, stride: int):
    """Raw logits of `sequence_head` for every clip window of one track (frames in time order)."""
    features = sequence_features(embeddings, frame_logits)
    windows = clip_windows(len(features), clip_len, stride)
    lengths = {end - start for start, end in windows}
    outputs = []
    # Windows share one length except for tracks shorter than a clip, so one batched call suffices.
    for length in sorted(lengths):
        batch = np.stack([features[start:end] for start, end in windows if end - start == length])
        outputs.append(np.asarray(sequence_head(batch, training=False)).reshape(-1))
    return np.concatenate(outputs).astype(np.float64)


@dataclass
class TrackScore:
    sequence_probability: float | None  # None: the version has no sequence head, or gives it no weight
    aggregate_probability: float
    fake_probability: float


class VideoModel:
    """A loaded video model: frame encoder + sequence head + the settings that combine them."""

    def __init__(self, frame_encoder, settings: dict, *, sequence_head=None) -> None:
        self.settings = dict(settings)
        combine = settings.get("combine") or {}
        self.sequence_weight = float(combine.get("sequence_weight", 0.5))
        if sequence_head is None and self.sequence_weight > 0:
            raise ModelError("the video settings weigh a sequence head that the weights do not have")
        self.sequence_head = sequence_head
        encoder = self.frame_encoder = frame_encoder
        self.crop_rule = CropRule.from_dict(settings.get("crop_rule"))
        if int(encoder.inputs[0].shape[1]) != self.crop_rule.size:
            raise ModelError("the video model's frame encoder does not match its crop rule")
        self.embedding_dim = int(encoder.outputs[0].shape[-1])
        # A frame encoder copied from an image model with the second head answers its manipulation types too.
        self.manipulation_types: tuple[str, ...] = ()
        if len(encoder.outputs) > 2:
            self.manipulation_types = tuple(settings.get("manipulation_types") or MANIPULATION_TYPES)
            if len(self.manipulation_types) != int(encoder.outputs[2].shape[-1]):
                raise ModelError(
                    "the frame encoder's manipulation head does not match the settings' manipulation_types"
                )
        self.frame_calibration = LogitCalibration.from_settings(settings.get("frame_calibration"))
        # As the image model it was copied from scores faces: each frame's face with its mirror image, or alone.
        self.test_time_flip = bool(settings.get("test_time_flip", False))
        sequence_calibration = settings.get("sequence_calibration") or {}
        self.sequence_scale = float(sequence_calibration.get("scale", 1.0))
        self.sequence_bias = float(sequence_calibration.get("bias", 0.0))
        self.clip_len = int(settings.get("clip_len", 8))
        self.clip_stride = int(settings.get("clip_stride", max(1, self.clip_len // 2)))
        self.aggregate = dict(settings.get("aggregate") or {"method": "trimmed_mean_logit", "trim": 0.2})
        aggregate_calibration = settings.get("aggregate_calibration") or {}
        self.aggregate_scale = float(aggregate_calibration.get("scale", 1.0))
        self.aggregate_bias = float(aggregate_calibration.get("bias", 0.0))
        # The weighted logit is re-calibrated on held-out videos, so that an uninformative combination
        # answers near the base rate (an `uncertain` verdict) instead of a confident wrong one.
        self.combined_scale = float(combine.get("scale", 1.0))
        self.combined_bias = float(combine.get("bias", 0.0))

    @classmethod
    def from_bundle(cls, bundle, settings: dict) -> VideoModel:
        """The model of one `bundle_video_model` (as saved in a version's file)."""
        try:
            encoder = bundle.get_layer(FRAME_ENCODER)
        except ValueError as exc:
            raise ModelError("the video weights lack a frame encoder") from exc
        head = bundle.get_layer(SEQUENCE_HEAD) if any(layer.name == SEQUENCE_HEAD for layer in bundle.layers) else None
        return cls(encoder, settings, sequence_head=head)

    @classmethod
    def load(
        cls, weights_path: str | os.PathLike, settings: dict, *, image_model: ImageModel | None = None
    ) -> VideoModel:
        """The version's model from its file, or, where it can, around `image_model`'s own network.

        A version without a sequence head whose settings record a `frame_encoder_digest` equal to
        `image_model`'s is that image model and its calibrations: a worker holding the image model then
        uses its network for frames too, so the weights are loaded and compiled once (the load time and
        memory of a second copy saved), and answers are the same to the bit.
        """
        if image_model is not None and shares_frame_encoder(settings, image_model):
            require_weights_file(weights_path)
            return cls(image_model.features, settings)
        return cls.from_bundle(load_keras_model(weights_path), settings)

    def predict_frames(self, crops: np.ndarray, *, batch_size: int = 64) -> FacePredictions:
        """Embeddings, frame logits and calibrated frame probabilities for N face crops, batched (eager Keras:
        the reference the compiled `ml.inference.FrameScorer` is tested against)."""
        embeddings, logits, manipulation = encode_in_batches(
            lambda batch: self.frame_encoder([batch], training=False),
            crops,
            embedding_dim=self.embedding_dim,
            batch_size=batch_size,
            mirror=self.test_time_flip,
        )
        return FacePredictions(
            logits=logits, probabilities=self.calibrate_frames(logits), embeddings=embeddings, manipulation=manipulation
        )

    def calibrate_frames(self, logits: np.ndarray) -> np.ndarray:
        """Per-frame fake probabilities from raw frame-encoder logits."""
        return self.frame_calibration.probabilities(logits)

    def sequence_logits(self, embeddings: np.ndarray, frame_logits: np.ndarray) -> np.ndarray:
        """Raw sequence-head logits for every clip window of one track."""
        return clip_logits(
            self.sequence_head, embeddings, frame_logits, clip_len=self.clip_len, stride=self.clip_stride
        )

    def aggregate_logit(self, frame_logits: np.ndarray) -> float:
        """The person's calibrated aggregate of raw frame logits, in logit space."""
        calibrated_frame_logits = self.frame_calibration.logits(frame_logits)
        return self.aggregate_scale * aggregate_frames(calibrated_frame_logits, self.aggregate) + self.aggregate_bias

    def score_track(self, embeddings: np.ndarray, frame_logits: np.ndarray) -> TrackScore:
        """The probabilities of one tracked person (frames in time order)."""
        aggregate_logit = self.aggregate_logit(frame_logits)
        if self.sequence_head is None or self.sequence_weight == 0:
            combined = self.combined_scale * aggregate_logit + self.combined_bias
            return TrackScore(
                sequence_probability=None,
                aggregate_probability=float(sigmoid(aggregate_logit)),
                fake_probability=float(sigmoid(combined)),
            )
        clip_logits = self.sequence_logits(embeddings, frame_logits)
        sequence_logit = self.sequence_scale * float(np.mean(clip_logits)) + self.sequence_bias
        weighted = self.sequence_weight * sequence_logit + (1.0 - self.sequence_weight) * aggregate_logit
        combined = self.combined_scale * weighted + self.combined_bias
        return TrackScore(
            sequence_probability=float(sigmoid(sequence_logit)),
            aggregate_probability=float(sigmoid(aggregate_logit)),
            fake_probability=float(sigmoid(combined)),
        )


def shares_frame_encoder(settings: dict, image_model: ImageModel) -> bool:
    """Whether a video version's frame encoder is `image_model`'s network (its recorded digest matches) and
    nothing else of the file is needed (no sequence head weighs in)."""
    recorded = settings.get("frame_encoder_digest")
    combine = settings.get("combine") or {}
    if not recorded or float(combine.get("sequence_weight", 0.5)) > 0:
        return False
    return recorded == weights_digest(image_model.features)


def combine_probabilities(
    sequence_probability: float, aggregate_probability: float, weight: float, scale: float = 1.0, bias: float = 0.0
) -> float:
    """The combination `score_track` applies, for callers that hold the two probabilities already."""
    weighted = weight * logit(sequence_probability) + (1.0 - weight) * logit(aggregate_probability)
    return float(sigmoid(scale * weighted + bias))
