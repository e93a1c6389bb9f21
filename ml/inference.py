"""Compiled face-crop scoring: the image model's and the video model's frame encoder as TensorFlow graphs.

Calling a Keras functional model eagerly re-dispatches every layer from Python; for the few crops of a scan
that overhead (~30 ms per call on 2 cores) costs more than the arithmetic. A `tf.function` with a
batch-polymorphic signature is traced once per process and then runs as one graph. The numbers are the
models' own (`ImageModel.predict`, `VideoModel.predict_frames`): `ml/tests/test_fast_pipeline.py` checks
that they agree to 1e-5, crop by crop and batched.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ml.image_model import FacePredictions, ImageModel, feature_model
from ml.metrics import sigmoid
from ml.video_model import VideoModel

BATCH_SIZE = 64


class CompiledEncoder:
    """A Keras model mapping crops (N x S x S x 3, uint8 range) to (embedding, logit[, manipulation]),
    compiled once."""

    def __init__(self, model: Any) -> None:
        import tensorflow as tf

        input_shape = [None, *(int(dim) for dim in model.inputs[0].shape[1:])]
        self.embedding_dim = int(model.outputs[0].shape[-1])
        self.has_manipulation = len(model.outputs) > 2
        self._call = tf.function(
            lambda crops: model(crops, training=False),
            input_signature=[tf.TensorSpec(input_shape, tf.float32)],
            reduce_retracing=True,
        )

    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Embeddings (N x D float32), raw logits (N float64) and manipulation-type probabilities (N x K, or
        None for a model without that head), in batches of BATCH_SIZE."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or len(crops) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32), np.zeros(0), None
        embeddings, logits, manipulation = [], [], []
        for start in range(0, len(crops), BATCH_SIZE):
            outputs = self._call(crops[start : start + BATCH_SIZE].astype(np.float32))
            embeddings.append(np.asarray(outputs[0]))
            logits.append(np.asarray(outputs[1]).reshape(-1))
            if self.has_manipulation:
                manipulation.append(np.asarray(outputs[2]))
        return (
            np.concatenate(embeddings).astype(np.float32),
            np.concatenate(logits).astype(np.float64),
            np.concatenate(manipulation).astype(np.float64) if manipulation else None,
        )


class ImageScorer:
    """`ImageModel.predict`, compiled: calibrated fake probabilities, logits and embeddings per crop."""

    def __init__(self, image_model: ImageModel) -> None:
        self.image_model = image_model
        self._encoder = CompiledEncoder(feature_model(image_model.classifier))

    def predict(self, crops: np.ndarray) -> FacePredictions:
        embeddings, logits, manipulation = self._encoder(crops)
        return FacePredictions(
            logits=logits,
            probabilities=self.image_model.calibrate(logits),
            embeddings=embeddings,
            manipulation=manipulation,
        )


class FrameScorer:
    """`VideoModel.predict_frames`, compiled: the video model's frame encoder with its frame calibration."""

    def __init__(self, video_model: VideoModel) -> None:
        self.video_model = video_model
        self._encoder = CompiledEncoder(video_model.frame_encoder)

    def predict(self, crops: np.ndarray) -> FacePredictions:
        embeddings, logits, manipulation = self._encoder(crops)
        probabilities = sigmoid(self.video_model.frame_scale * logits + self.video_model.frame_bias)
        return FacePredictions(
            logits=logits, probabilities=probabilities, embeddings=embeddings, manipulation=manipulation
        )
