"""The video model: a GRU over per-frame face features of one tracked person, beside a robust frame aggregate.

A video version's `.keras` file is self-contained: it holds the frame encoder (a frozen copy of the image
CNN it was trained with, answering embedding and logit per crop) and the sequence head (the GRU). Keeping
both in one file means a later image model can never be paired with a sequence head trained on another
model's embeddings.

Per track, three probabilities come out:
- `sequence_probability`: the GRU on short clips of the track (as it was trained), averaged in logit space;
- `aggregate_probability`: a trimmed mean of the calibrated per-frame logits (robust to a few bad frames);
- `fake_probability`: their weighted mean in logit space, with the weight stored in the settings, then
  re-calibrated (Platt) on held-out videos.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ml.errors import ModelError
from ml.faces import CropRule
from ml.image_model import MANIPULATION_TYPES, FacePredictions, encode_in_batches, load_keras_model
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


def bundle_video_model(frame_encoder, sequence_head):
    """One Keras model holding both parts (two inputs, three outputs) so they are saved in one file."""
    import keras

    frame_encoder = keras.Model(frame_encoder.inputs, frame_encoder.outputs, name=FRAME_ENCODER)
    face_input = keras.Input(shape=frame_encoder.inputs[0].shape[1:], name="face")
    sequence_input = keras.Input(shape=sequence_head.inputs[0].shape[1:], name="sequence")
    # embedding, frame logit[, manipulation-type probabilities]
    frame_outputs = list(frame_encoder(face_input))
    sequence_logit = sequence_head(sequence_input)
    return keras.Model([face_input, sequence_input], [*frame_outputs, sequence_logit], name="unmask_video")


def trimmed_mean(values: np.ndarray, trim: float) -> float:
    """Mean after dropping the `trim` fraction at each end (at least one value is kept)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    cut = int(np.floor(len(ordered) * trim))
    kept = ordered[cut : len(ordered) - cut] if len(ordered) - 2 * cut > 0 else ordered
    return float(kept.mean())


def clip_windows(length: int, clip_len: int, stride: int) -> list[tuple[int, int]]:
    """Start/end positions of the clips the sequence head reads (the whole track when it is shorter)."""
    if length <= clip_len:
        return [(0, length)]
    starts = list(range(0, length - clip_len + 1, max(1, stride)))
    if starts[-1] != length - clip_len:
        starts.append(length - clip_len)
    return [(start, start + clip_len) for start in starts]


@dataclass
class TrackScore:
    sequence_probability: float
    aggregate_probability: float
    fake_probability: float


class VideoModel:
    """A loaded video model: frame encoder + sequence head + the settings that combine them."""

    def __init__(self, bundle, settings: dict) -> None:
        self.settings = dict(settings)
        try:
            encoder = bundle.get_layer(FRAME_ENCODER)
            self.sequence_head = bundle.get_layer(SEQUENCE_HEAD)
        except ValueError as exc:
            raise ModelError("the video weights lack a frame encoder or a sequence head") from exc
        self.frame_encoder = encoder
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
        frame_calibration = settings.get("frame_calibration") or {}
        self.frame_scale = float(frame_calibration.get("scale", 1.0))
        self.frame_bias = float(frame_calibration.get("bias", 0.0))
        sequence_calibration = settings.get("sequence_calibration") or {}
        self.sequence_scale = float(sequence_calibration.get("scale", 1.0))
        self.sequence_bias = float(sequence_calibration.get("bias", 0.0))
        self.clip_len = int(settings.get("clip_len", 8))
        self.clip_stride = int(settings.get("clip_stride", max(1, self.clip_len // 2)))
        self.trim = float((settings.get("aggregate") or {}).get("trim", 0.2))
        combine = settings.get("combine") or {}
        self.sequence_weight = float(combine.get("sequence_weight", 0.5))
        # The weighted logit is re-calibrated on held-out videos, so that an uninformative combination
        # answers near the base rate (an `uncertain` verdict) instead of a confident wrong one.
        self.combined_scale = float(combine.get("scale", 1.0))
        self.combined_bias = float(combine.get("bias", 0.0))

    @classmethod
    def load(cls, weights_path: str | os.PathLike, settings: dict) -> VideoModel:
        return cls(load_keras_model(weights_path), settings)

    def predict_frames(self, crops: np.ndarray, *, batch_size: int = 64) -> FacePredictions:
        """Embeddings, frame logits and calibrated frame probabilities for N face crops, batched (eager Keras:
        the reference the compiled `ml.inference.FrameScorer` is tested against)."""
        embeddings, logits, manipulation = encode_in_batches(
            lambda batch: self.frame_encoder([batch], training=False),
            crops,
            embedding_dim=self.embedding_dim,
            batch_size=batch_size,
        )
        return FacePredictions(
            logits=logits, probabilities=self.calibrate_frames(logits), embeddings=embeddings, manipulation=manipulation
        )

    def calibrate_frames(self, logits: np.ndarray) -> np.ndarray:
        """Per-frame fake probabilities from raw frame-encoder logits."""
        return sigmoid(self.frame_scale * np.asarray(logits, dtype=np.float64) + self.frame_bias)

    def sequence_logits(self, embeddings: np.ndarray, frame_logits: np.ndarray) -> np.ndarray:
        """Raw sequence-head logits for every clip window of one track."""
        features = sequence_features(embeddings, frame_logits)
        windows = clip_windows(len(features), self.clip_len, self.clip_stride)
        lengths = {end - start for start, end in windows}
        outputs = []
        # Windows share one length except for tracks shorter than a clip, so one batched call suffices.
        for length in sorted(lengths):
            batch = np.stack([features[start:end] for start, end in windows if end - start == length])
            outputs.append(np.asarray(self.sequence_head(batch, training=False)).reshape(-1))
        return np.concatenate(outputs).astype(np.float64)

    def score_track(self, embeddings: np.ndarray, frame_logits: np.ndarray) -> TrackScore:
        """The three probabilities of one tracked person (frames in time order)."""
        clip_logits = self.sequence_logits(embeddings, frame_logits)
        sequence_logit = self.sequence_scale * float(np.mean(clip_logits)) + self.sequence_bias
        calibrated_frame_logits = self.frame_scale * np.asarray(frame_logits, dtype=np.float64) + self.frame_bias
        aggregate_logit = trimmed_mean(calibrated_frame_logits, self.trim)
        weighted = self.sequence_weight * sequence_logit + (1.0 - self.sequence_weight) * aggregate_logit
        combined = self.combined_scale * weighted + self.combined_bias
        return TrackScore(
            sequence_probability=float(sigmoid(sequence_logit)),
            aggregate_probability=float(sigmoid(aggregate_logit)),
            fake_probability=float(sigmoid(combined)),
        )


def combine_probabilities(
    sequence_probability: float, aggregate_probability: float, weight: float, scale: float = 1.0, bias: float = 0.0
) -> float:
    """The combination `score_track` applies, for callers that hold the two probabilities already."""
    weighted = weight * logit(sequence_probability) + (1.0 - weight) * logit(aggregate_probability)
    return float(sigmoid(scale * weighted + bias))
