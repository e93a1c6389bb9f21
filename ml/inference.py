"""Compiled face-crop scoring: the image model's and the video model's frame encoder as TensorFlow graphs.

Calling a Keras functional model eagerly re-dispatches every layer from Python; for the few crops of a scan
that overhead (~30 ms per call on 2 cores) costs more than the arithmetic. A `tf.function` with a
batch-polymorphic signature is traced once per process and then runs as one graph. The numbers are the
models' own (`ImageModel.predict`, `VideoModel.predict_frames`, which share the batching loop
`ml.image_model.encode_in_batches`): `ml/tests/test_fast_pipeline.py` checks that they agree to 1e-5, crop by
crop and batched. These scorers serve the analysis of photos and videos and a shadow candidate's rescoring.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np

from ml.image_model import FacePredictions, ImageModel, encode_in_batches
from ml.video_model import VideoModel

BATCH_SIZE = 64


class CompiledEncoder:
    """A Keras model mapping crops (N x S x S x 3, uint8 range) to (embedding, logit[, manipulation]),
    compiled once."""

    def __init__(self, model: Any) -> None:
        import tensorflow as tf

        input_shape = [None, *(int(dim) for dim in model.inputs[0].shape[1:])]
        self.embedding_dim = int(model.outputs[0].shape[-1])
        self._call = tf.function(
            lambda crops: model(crops, training=False),
            input_signature=[tf.TensorSpec(input_shape, tf.float32)],
            reduce_retracing=True,
        )

    def __call__(self, crops: np.ndarray, *, mirror: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Embeddings, raw logits and manipulation-type probabilities (None without that head), batched; with
        `mirror`, each the mean over the crop and its mirror image (`encode_in_batches`)."""
        return encode_in_batches(
            self._call, crops, embedding_dim=self.embedding_dim, batch_size=BATCH_SIZE, mirror=mirror
        )


# One compiled encoder per Keras model: where the video model's frame encoder is the image model's own network
# (`VideoModel.load(..., image_model=)`), both scorers run the same graph, traced once.
_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_compiled_lock = threading.Lock()


def compiled_encoder(model: Any) -> CompiledEncoder:
    """The `CompiledEncoder` of `model`, built on first use and kept while the model lives."""
    with _compiled_lock:
        if model not in _compiled:
            _compiled[model] = CompiledEncoder(model)
        return _compiled[model]


class ImageScorer:
    """`ImageModel.predict`, compiled: calibrated fake probabilities, logits and embeddings per crop."""

    def __init__(self, image_model: ImageModel) -> None:
        self.image_model = image_model
        self.crop_rule = image_model.crop_rule
        self.manipulation_types = image_model.manipulation_types
        self._encoder = compiled_encoder(image_model.features)

    def predict(self, crops: np.ndarray) -> FacePredictions:
        embeddings, logits, manipulation = self._encoder(crops, mirror=self.image_model.test_time_flip)
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
        self.crop_rule = video_model.crop_rule
        self.manipulation_types = video_model.manipulation_types
        self._encoder = compiled_encoder(video_model.frame_encoder)

    def predict(self, crops: np.ndarray) -> FacePredictions:
        embeddings, logits, manipulation = self._encoder(crops, mirror=self.video_model.test_time_flip)
        return FacePredictions(
            logits=logits,
            probabilities=self.video_model.calibrate_frames(logits),
            embeddings=embeddings,
            manipulation=manipulation,
        )
