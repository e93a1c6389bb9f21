"""MTCNN with compiled networks: the `mtcnn` package's weights and box logic, run as TensorFlow graphs.

The `mtcnn` package runs its three networks eagerly, layer by layer, and rebuilds its image pyramid with
TensorFlow ops on float64 arrays; on a 2-core CPU that overhead is most of the detection time (a 96 px image
costs ~60 ms, nearly all of it Python and op dispatch). This runner keeps the package's networks, weights,
thresholds and box arithmetic (`mtcnn.utils.bboxes`) and changes only how they are executed:

- each network is a `tf.function` with a shape-polymorphic input signature, traced once per process;
- the pyramid levels are resized with OpenCV (area interpolation, the method the package uses) in float32;
- a batch of same-sized images (the sampled frames of a video, or face regions) goes through every stage in
  one call per pyramid level.

It also fixes the package's pyramid for `min_face_size` above 20: the package counts levels from the image
size alone, so with a larger minimum face its last levels fall under PNet's 12 px window and the convolution
fails. Here a level is used only when it is at least 12 px on its short side.

Outputs match the package's `detect_faces` (same boxes within a pixel or two, same confidences to ~1e-4;
`ml/tests/test_fast_pipeline.py` checks it on the shared photos).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

PNET_CELL = 12
SCALE_FACTOR = 0.709
LANDMARK_ORDER = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def pyramid_scales(height: int, width: int, *, min_face_size: int, scale_factor: float = SCALE_FACTOR) -> list[float]:
    """The pyramid PNet runs on: the first level maps `min_face_size` to PNet's 12 px window, each next level
    is `scale_factor` smaller, and levels under 12 px on the short side are not used."""
    short_side = min(height, width)
    scale = PNET_CELL / max(1.0, float(min_face_size))
    scales = []
    while short_side * scale >= PNET_CELL and len(scales) < 64:
        scales.append(scale)
        scale *= scale_factor
    return scales


class CompiledMTCNN:
    """The three MTCNN networks as compiled graphs, with the package's thresholds and non-maximum suppression."""

    def __init__(self, *, device: str = "CPU:0", jit_compile: bool = False) -> None:
        """`jit_compile` runs the graphs through XLA; off, because it measured slower (`python -m bench.xla`)."""
        import tensorflow as tf
        from mtcnn.stages import StageONet, StagePNet, StageRNet

        self.device = device
        with tf.device(device):
            pnet, rnet, onet = StagePNet().model, StageRNet().model, StageONet().model
        self._pnet = self._compiled(pnet, [None, None, None, 3], jit_compile=jit_compile)
        self._rnet = self._compiled(rnet, [None, 24, 24, 3], jit_compile=jit_compile)
        self._onet = self._compiled(onet, [None, 48, 48, 3], jit_compile=jit_compile)

    def warm_up(self) -> None:
        """Trace the three graphs now (a face-free image never reaches RNet and ONet), not in the first scan."""
        self._pnet(np.zeros((1, 24, 24, 3), np.float32))
        self._rnet(np.zeros((1, 24, 24, 3), np.float32))
        self._onet(np.zeros((1, 48, 48, 3), np.float32))

    @staticmethod
    def _compiled(network: Any, shape: list[int | None], *, jit_compile: bool) -> Callable:
        import tensorflow as tf

        # One trace per process: the signature leaves batch (and, for PNet, height and width) open.
        return tf.function(
            lambda batch: network(batch, training=False),
            input_signature=[tf.TensorSpec(shape, tf.float32)],
            reduce_retracing=True,
            jit_compile=jit_compile,
        )

    def detect(
        self,
        images: np.ndarray | list[np.ndarray],
        *,
        min_face_size: int = 20,
        threshold_pnet: float = 0.6,
        threshold_rnet: float = 0.7,
        threshold_onet: float = 0.8,
    ) -> list[list[dict]]:
        """Faces in each of N same-sized RGB uint8 images, in the `mtcnn` package's JSON form per image:
        `{"box": [x, y, w, h], "confidence": c, "keypoints": {name: [x, y]}}`."""
        import tensorflow as tf

        batch = np.asarray(images) if not isinstance(images, np.ndarray) else images
        if batch.ndim == 3:
            batch = batch[None]
        count, height, width = batch.shape[0], batch.shape[1], batch.shape[2]
        if count == 0:
            return []
        normalized = (batch.astype(np.float32) - 127.5) / 128.0
        with tf.device(self.device):
            boxes = self._stage_pnet(normalized, min_face_size=min_face_size, threshold=threshold_pnet)
            if len(boxes):
                boxes = self._stage_rnet(normalized, boxes, threshold=threshold_rnet)
            if len(boxes):
                boxes = self._stage_onet(normalized, boxes, threshold=threshold_onet)
        return _to_json(boxes, count=count, height=height, width=width)

    def _stage_pnet(self, normalized: np.ndarray, *, min_face_size: int, threshold: float) -> np.ndarray:
        import cv2
        from mtcnn.utils.bboxes import generate_bounding_box, resize_to_square, smart_nms_from_bboxes

        count, height, width = normalized.shape[:3]
        per_image: list[list[np.ndarray]] = [[] for _ in range(count)]
        for scale in pyramid_scales(height, width, min_face_size=min_face_size):
            size = (max(PNET_CELL, int(width * scale)), max(PNET_CELL, int(height * scale)))
            level = np.stack([cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in normalized])
            regression, classes = self._pnet(level)
            # The network runs on the whole batch; the box logic runs per image, so that ties between equal
            # scores are broken exactly as for that image alone (a batch never changes an image's faces).
            for index in range(count):
                proposals = generate_bounding_box(regression[index : index + 1], classes[index : index + 1], threshold)
                if not len(proposals):
                    continue
                proposals[:, 0] = index
                proposals[:, 1:5] = proposals[:, 1:5] / scale
                per_image[index].append(
                    smart_nms_from_bboxes(proposals, threshold=0.5, method="union", initial_sort=False)
                )
        kept = [
            smart_nms_from_bboxes(np.concatenate(found), threshold=0.7, method="union", initial_sort=True)
            for found in per_image
            if found
        ]
        if not kept:
            return np.empty((0, 6))
        return resize_to_square(np.concatenate(kept))

    def _stage_rnet(self, normalized: np.ndarray, boxes: np.ndarray, *, threshold: float) -> np.ndarray:
        from mtcnn.utils.bboxes import (
            adjust_bboxes,
            pick_matches,
            replace_confidence,
            resize_to_square,
            smart_nms_from_bboxes,
        )

        offsets, scores = self._rnet(_patches(normalized, boxes, 24))
        boxes = adjust_bboxes(replace_confidence(boxes, scores), offsets)
        boxes = pick_matches(boxes, score_threshold=threshold)
        boxes = _per_image(
            boxes, lambda rows: smart_nms_from_bboxes(rows, threshold=0.7, method="union", initial_sort=True)
        )
        return resize_to_square(boxes) if len(boxes) else boxes

    def _stage_onet(self, normalized: np.ndarray, boxes: np.ndarray, *, threshold: float) -> np.ndarray:
        from mtcnn.utils.bboxes import adjust_bboxes, pick_matches, replace_confidence, smart_nms_from_bboxes
        from mtcnn.utils.landmarks import adjust_landmarks

        offsets, landmarks, scores = self._onet(_patches(normalized, boxes, 48))
        landmarks = adjust_landmarks(landmarks, boxes)
        boxes = adjust_bboxes(replace_confidence(boxes, scores), offsets)
        boxes = np.concatenate([boxes, landmarks], axis=-1)
        boxes = pick_matches(boxes, scores_column=5, score_threshold=threshold)
        return _per_image(
            boxes, lambda rows: smart_nms_from_bboxes(rows, threshold=0.7, method="min", initial_sort=True)
        )


def _per_image(boxes: np.ndarray, suppress: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply `suppress` (non-maximum suppression) to each image's rows separately, keeping image order."""
    if not len(boxes):
        return boxes
    image_ids = boxes[:, 0]
    return np.concatenate([suppress(boxes[image_ids == index]) for index in np.unique(image_ids)])


def _patches(normalized: np.ndarray, boxes: np.ndarray, size: int) -> Any:
    """Square patches of the proposals, resized to the next network's input (as `mtcnn.utils.images` does)."""
    import tensorflow as tf

    height, width = normalized.shape[1:3]
    coordinates = boxes[:, [2, 1, 4, 3]] / np.asarray([[height, width, height, width]])
    return tf.image.crop_and_resize(
        normalized, coordinates.astype(np.float32), boxes[:, 0].astype(np.int32), (size, size)
    )


def _to_json(boxes: np.ndarray, *, count: int, height: int, width: int) -> list[list[dict]]:
    """Per image, the faces as the `mtcnn` package reports them (boxes clipped to the image)."""
    faces: list[list[dict]] = [[] for _ in range(count)]
    for row in np.asarray(boxes, dtype=np.float64):
        x1 = min(max(row[1], 0.0), width - 1)
        y1 = min(max(row[2], 0.0), height - 1)
        x2 = min(max(row[3], 0.0), width - 1)
        y2 = min(max(row[4], 0.0), height - 1)
        box = np.asarray([x1, y1, x2 - x1, y2 - y1]).round().astype(int).tolist()
        keypoints = {}
        if row.shape[0] >= 16:
            keypoints = {
                name: [int(round(row[6 + index])), int(round(row[11 + index]))]
                for index, name in enumerate(LANDMARK_ORDER)
            }
        faces[int(row[0])].append({"box": box, "confidence": float(row[5]), "keypoints": keypoints})
    return faces
