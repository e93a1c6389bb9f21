"""Shadow scoring: a candidate model version re-scores the faces another analysis already found.

Shadow mode (see `training.shadow`) compares a candidate with the active version on real uploads. For the
comparison to be about the models and nothing else, the candidate sees exactly what the active version saw:
the same face boxes of an image, the same sampled frames and the same tracks of a video, taken from the
stored result. MTCNN is not run again (it is the slow part, and a different detector setting would change
the question). Only the candidate's own crop rule, calibration and decision band are applied.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict

import numpy as np

from ml.errors import MediaError
from ml.faces import crop_square, iter_video_frames, load_image
from ml.image_model import ImageModel
from ml.pipeline import Decision, ModelSpec
from ml.runtime import configure_tensorflow
from ml.video_model import VideoModel


def _rounded(value: float) -> float:
    return round(float(value), 6)


class ShadowScorer:
    """One loaded candidate version (image or video model), scoring stored faces; built once per worker process."""

    def __init__(self, spec: ModelSpec, *, kind: str, max_image_pixels: int = 40_000_000) -> None:
        if kind not in {"image", "video"}:
            raise ValueError(f"unknown model kind {kind!r}")
        configure_tensorflow()
        self.spec = spec
        self.kind = kind
        self.max_image_pixels = int(max_image_pixels)
        self.decision = Decision.from_settings(spec.settings)
        self.image_model = ImageModel.load(spec.weights_path, spec.settings) if kind == "image" else None
        self.video_model = VideoModel.load(spec.weights_path, spec.settings) if kind == "video" else None

    def score(self, path: str | os.PathLike, reference: dict) -> dict:
        """The candidate's verdict on the media at `path`, over the faces of the stored result `reference`.

        Returns {"verdict", "fake_probability", "faces": [{"index", "fake_probability", "verdict"}],
        "timings": {"decode_s", "model_s", "total_s"}, "model"}. The verdict is `no_face` when the reference
        found no face. Raises MediaError when the media can no longer be read.
        """
        if reference.get("kind") != self.kind:
            raise ValueError(f"a {self.kind} candidate cannot score a {reference.get('kind')!r} result")
        started = time.perf_counter()
        if self.kind == "image":
            face_scores, decoded = self._score_image(path, reference)
        else:
            face_scores, decoded = self._score_video(path, reference)
        finished = time.perf_counter()
        if face_scores:
            fake_probability = _rounded(max(probability for _index, probability in face_scores))
            verdict = self.decision.verdict(fake_probability)
        else:
            fake_probability = None
            verdict = "no_face"
        return {
            "verdict": verdict,
            "fake_probability": fake_probability,
            "faces": [
                {
                    "index": index,
                    "fake_probability": _rounded(probability),
                    "verdict": self.decision.verdict(probability),
                }
                for index, probability in face_scores
            ],
            "timings": {
                "decode_s": round(decoded - started, 4),
                "model_s": round(finished - decoded, 4),
                "total_s": round(finished - started, 4),
            },
            "model": self.spec.label,
        }

    def _score_image(self, path: str | os.PathLike, reference: dict) -> tuple[list[tuple[int, float]], float]:
        faces = reference.get("faces") or []
        if not faces:
            return [], time.perf_counter()
        image = load_image(path, max_pixels=self.max_image_pixels)
        decoded = time.perf_counter()
        crops = np.stack([crop_square(image, face["box"], self.image_model.crop_rule) for face in faces])
        predictions = self.image_model.predict(crops)
        return [
            (int(face.get("index", position)), float(probability))
            for position, (face, probability) in enumerate(zip(faces, predictions.probabilities, strict=True))
        ], decoded

    def _score_video(self, path: str | os.PathLike, reference: dict) -> tuple[list[tuple[int, float]], float]:
        # Which face box of which frame belongs to which track, as the reference analysis tracked them.
        boxes_by_frame: dict[int, list[tuple[int, list[int]]]] = defaultdict(list)
        for frame in reference.get("frames") or []:
            for face in frame.get("faces") or []:
                boxes_by_frame[int(frame["index"])].append((int(face["track"]), face["box"]))
        if not boxes_by_frame:
            return [], time.perf_counter()
        crops_by_track: dict[int, list[np.ndarray]] = defaultdict(list)
        decoded_frames = 0
        for frame_number, frame in iter_video_frames(path, sorted(boxes_by_frame)):
            decoded_frames += 1
            for track, box in boxes_by_frame[frame_number]:
                crops_by_track[track].append(crop_square(frame, box, self.video_model.crop_rule))
        if decoded_frames == 0:
            raise MediaError("No frame of the video could be decoded.")
        decoded = time.perf_counter()
        scores = []
        # iter_video_frames yields frames in increasing order, so each track's crops are in time order, as
        # the sequence head needs them.
        for track in sorted(crops_by_track):
            predictions = self.video_model.predict_frames(np.stack(crops_by_track[track]))
            track_score = self.video_model.score_track(predictions.embeddings, predictions.logits)
            scores.append((track, track_score.fake_probability))
        return scores, decoded
