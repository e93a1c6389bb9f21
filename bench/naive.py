"""THE BASELINE, not the product: the naive pipeline typical open-source deepfake detectors run.

Same models, same decisions, same frame sampling as `ml.pipeline.Analyzer`, executed the straightforward way:

- the `mtcnn` package as it ships (eager TensorFlow), on every sampled frame at full resolution (no
  downscaling, no tracking between detections: every frame is detected from scratch);
- the model called once per face crop with Keras' `model.predict` (one call per crop, no batching);
- every frame decoded and converted to RGB on the way to the sampled ones.

The benchmarks run it on the same files in the same run as the fast pipeline and print the ratio; the
accuracy benchmark scores it too, so that the speed-up is shown not to cost accuracy.
"""

from __future__ import annotations

import os
import time

import numpy as np

from ml.faces import Face, crop_square, evenly_spaced_indices, load_image, probe_video, track_faces
from ml.pipeline import Analyzer


class NaivePipeline:
    """The baseline, borrowing the fast Analyzer's models and decisions (so only the execution differs)."""

    def __init__(self, analyzer: Analyzer) -> None:
        from mtcnn import MTCNN

        self.analyzer = analyzer
        self.mtcnn = MTCNN()
        self.min_confidence = analyzer.detector.min_confidence
        self.min_face_size = analyzer.detector.min_face_size

    def detect(self, image: np.ndarray) -> list[Face]:
        raw_faces = self.mtcnn.detect_faces(image, min_face_size=self.min_face_size) or []
        faces = []
        height, width = image.shape[:2]
        for raw in raw_faces:
            if float(raw["confidence"]) < self.min_confidence:
                continue
            x, y, box_width, box_height = (int(value) for value in raw["box"])
            left, top = max(0, x), max(0, y)
            right, bottom = min(width, x + box_width), min(height, y + box_height)
            if right - left >= 2 and bottom - top >= 2:
                faces.append(Face(box=(left, top, right - left, bottom - top), confidence=float(raw["confidence"])))
        faces.sort(key=lambda face: face.confidence, reverse=True)
        return faces

    def analyze_image(self, path: str | os.PathLike) -> dict:
        """Verdict and fake probability of a photo, with stage times."""
        started = time.perf_counter()
        image = load_image(path, max_pixels=self.analyzer.max_image_pixels)
        decoded = time.perf_counter()
        faces = self.detect(image)
        detected = time.perf_counter()
        model = self.analyzer.image_model
        probabilities = []
        for face in faces:
            crop = crop_square(image, face.box, model.crop_rule)
            logit = _views_mean(
                lambda view: _first(model.classifier.predict(view, verbose=0)).reshape(-1), crop, model.test_time_flip
            )
            probabilities.append(float(model.calibrate(logit)[0]))
        finished = time.perf_counter()
        probability = max(probabilities) if probabilities else None
        return {
            "verdict": self.analyzer.image_decision.verdict(probability) if probabilities else "no_face",
            "fake_probability": probability,
            "faces": len(faces),
            "timings": {
                "decode_s": decoded - started,
                "detect_s": detected - decoded,
                "model_s": finished - detected,
                "total_s": finished - started,
            },
        }

    def analyze_video(self, path: str | os.PathLike) -> dict:
        """Verdict and fake probability of a video (same sampling, tracking and scoring rules), with stage times."""
        import cv2

        started = time.perf_counter()
        info = probe_video(path)
        wanted = set(evenly_spaced_indices(info.frame_count, self.analyzer.video_frames))
        video_model = self.analyzer.video_model
        crop_rule = video_model.crop_rule if video_model else self.analyzer.image_model.crop_rule
        capture = cv2.VideoCapture(str(path))
        decode_s = detect_s = 0.0
        faces_per_frame, crops_per_frame = [], []
        position = 0
        try:
            while True:
                tick = time.perf_counter()
                ok, frame = capture.read()
                if not ok:
                    break
                frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                tock = time.perf_counter()
                decode_s += tock - tick
                if position in wanted:
                    faces = self.detect(frame)
                    faces_per_frame.append(faces)
                    crops_per_frame.append([crop_square(frame, face.box, crop_rule) for face in faces])
                    detect_s += time.perf_counter() - tock
                position += 1
        finally:
            capture.release()
        model_started = time.perf_counter()
        tracks = track_faces(faces_per_frame)
        people = []
        for track in tracks:
            embeddings, logits = [], []
            for frame_position, face in zip(track.frame_positions, track.faces, strict=True):
                crop = crops_per_frame[frame_position][faces_per_frame[frame_position].index(face)]
                if video_model is not None:
                    # (embedding, logit), and the manipulation-type probabilities after them where there is a head.
                    embedding, logit = _views_mean(
                        lambda view: video_model.frame_encoder.predict(view, verbose=0),
                        crop,
                        video_model.test_time_flip,
                    )[:2]
                else:
                    classifier = self.analyzer.image_model.classifier
                    embedding = np.zeros((1, 1), np.float32)
                    logit = _views_mean(
                        lambda view, classifier=classifier: _first(classifier.predict(view, verbose=0)),
                        crop,
                        self.analyzer.image_model.test_time_flip,
                    )
                embeddings.append(np.asarray(embedding)[0])
                logits.append(float(np.asarray(logit).reshape(-1)[0]))
            if video_model is not None:
                score = video_model.score_track(np.stack(embeddings), np.asarray(logits))
                people.append(score.fake_probability)
            else:
                calibrated = self.analyzer.image_model.calibrate(np.asarray(logits))
                people.append(float(np.mean(calibrated)))
        finished = time.perf_counter()
        probability = max(people) if people else None
        return {
            "verdict": self.analyzer.video_decision.verdict(probability) if people else "no_face",
            "fake_probability": probability,
            "people": len(people),
            "frames_analyzed": len(faces_per_frame),
            "timings": {
                "decode_s": decode_s,
                "detect_s": detect_s,
                "model_s": finished - model_started,
                "total_s": finished - started,
            },
        }


def _views_mean(predict, crop: np.ndarray, mirror: bool):
    """`predict`'s answer for one crop (a batch of one), averaged with its answer for the mirrored crop where the
    version scores faces that way (`test_time_flip`): one plain call per view, as a script would make them.
    For a model of several outputs, a list of each output's mean."""
    views = [crop, crop[:, ::-1]] if mirror else [crop]
    answers = [predict(view[None].astype(np.float32)) for view in views]
    if isinstance(answers[0], (list, tuple)):
        return [np.mean([np.asarray(answer[index]) for answer in answers], axis=0) for index in range(len(answers[0]))]
    return np.mean([np.asarray(answer) for answer in answers], axis=0)


def _first(outputs) -> np.ndarray:
    """The logit of a classifier's outputs: its only output, or the first of (logit, manipulation types)."""
    return np.asarray(outputs[0] if isinstance(outputs, (list, tuple)) else outputs)
