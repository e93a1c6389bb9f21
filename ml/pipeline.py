"""The analysis pipeline the platform calls: media in, a JSON-serialisable verdict with faces and timings out.

An `Analyzer` holds MTCNN, the image model and (optionally) the video model. Building one loads the weights;
a worker builds it once per process and reuses it for every job (see `scans.analyzers`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ml.errors import MediaError
from ml.faces import (
    Face,
    FaceDetector,
    Track,
    crop_square,
    evenly_spaced_indices,
    iter_video_frames,
    load_image,
    prefetched,
    probe_video,
    track_faces,
)
from ml.image_model import FacePredictions, ImageModel
from ml.inference import FrameScorer, ImageScorer
from ml.metrics import logit, sigmoid
from ml.runtime import configure_tensorflow
from ml.video_model import VideoModel, trimmed_mean

SMALL_FACE_PX = 40
# A video's sampled frames get a full-frame MTCNN pass on the first frame and then every this many frames;
# in between, tracked faces are re-found in small regions around their last boxes (`detect_near`, a few
# percent of the cost). A face that is not re-found, or a frame with no tracked face, gets a full pass at once,
# so a person is missed only if they appear between two full passes and leave before the next one.
FULL_DETECTION_EVERY = 8
Progress = Callable[[dict], None] | None


@dataclass(frozen=True)
class ModelSpec:
    """Where a model version's weights are and how to use them (its `ModelVersion.settings`)."""

    weights_path: str
    settings: dict = field(default_factory=dict)
    label: str = ""


@dataclass(frozen=True)
class Decision:
    """Probability cuts of a model version: `uncertain` strictly between low and high."""

    threshold: float
    uncertain_low: float
    uncertain_high: float

    @classmethod
    def from_settings(cls, settings: dict) -> Decision:
        threshold = float(settings.get("threshold", 0.5))
        low = float(settings.get("uncertain_low", min(threshold, 0.35)))
        high = float(settings.get("uncertain_high", max(threshold, 0.65)))
        return cls(threshold=threshold, uncertain_low=min(low, threshold), uncertain_high=max(high, threshold))

    def verdict(self, probability: float) -> str:
        if probability >= self.uncertain_high:
            return "fake"
        if probability <= self.uncertain_low:
            return "real"
        return "uncertain"

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "uncertain_low": self.uncertain_low, "uncertain_high": self.uncertain_high}


def _report(progress: Progress, **payload: object) -> None:
    if progress is not None:
        progress(payload)


def _rounded(value: float) -> float:
    return round(float(value), 6)


class Analyzer:
    """Holds MTCNN + the image model (+ the video model); built once per worker process, reused across jobs."""

    def __init__(
        self,
        image_model: ModelSpec,
        video_model: ModelSpec | None = None,
        *,
        video_frames: int = 32,
        max_image_pixels: int = 40_000_000,
        full_detection_every: int = FULL_DETECTION_EVERY,
    ) -> None:
        configure_tensorflow()
        self.image_spec = image_model
        self.video_spec = video_model
        self.video_frames = max(1, int(video_frames))
        self.max_image_pixels = int(max_image_pixels)
        self.image_model = ImageModel.load(image_model.weights_path, image_model.settings)
        self.image_scorer = ImageScorer(self.image_model)
        self.image_decision = Decision.from_settings(image_model.settings)
        self.video_model = VideoModel.load(video_model.weights_path, video_model.settings) if video_model else None
        self.frame_scorer = FrameScorer(self.video_model) if self.video_model is not None else None
        self.full_detection_every = max(1, int(full_detection_every))
        self.video_decision = Decision.from_settings(video_model.settings if video_model else image_model.settings)
        detector_settings = dict(image_model.settings.get("detector") or {})
        self.detector = FaceDetector(
            detect_max_side=int(detector_settings.get("detect_max_side", 960)),
            min_confidence=float(detector_settings.get("min_confidence", 0.9)),
            min_face_size=int(detector_settings.get("min_face_size", 20)),
        )
        self.warm_up()

    def warm_up(self) -> None:
        """Trace every compiled graph (MTCNN, the crop encoders, Grad-CAM) once, at load time.

        Tracing costs about a second in all; doing it here keeps it out of the first scan a worker runs.
        """
        from ml.gradcam import gradcam_heatmaps

        self.detector.warm_up()
        blank = np.zeros((1, self.image_model.crop_rule.size, self.image_model.crop_rule.size, 3), np.uint8)
        self.image_scorer.predict(blank)
        gradcam_heatmaps(self.image_model.classifier, blank)
        if self.video_model is not None and self.frame_scorer is not None:
            blank = np.zeros((1, self.video_model.crop_rule.size, self.video_model.crop_rule.size, 3), np.uint8)
            self.frame_scorer.predict(blank)
            gradcam_heatmaps(self.video_model.frame_encoder, blank, output_index=1)

    @property
    def labels(self) -> dict:
        return {"image": self.image_spec.label, "video": self.video_spec.label if self.video_spec else None}

    # --- images -------------------------------------------------------------------------------------------

    def analyze_image(self, path: str | os.PathLike, *, progress: Progress = None) -> dict:
        """Verdict for a photo: every face scored; the photo is as fake as its most suspicious face."""
        started = time.perf_counter()
        _report(progress, stage="decoding")
        image = load_image(path, max_pixels=self.max_image_pixels)
        decoded = time.perf_counter()
        _report(progress, stage="detecting faces")
        faces = self.detector.detect(image)
        detected = time.perf_counter()
        _report(progress, stage="scoring faces", faces_found=len(faces))
        notes: list[str] = []
        face_results = []
        fake_probability = None
        crops_done = detected
        if faces:
            # All faces of the photo go through the model in one batched call.
            crops = np.stack([crop_square(image, face.box, self.image_model.crop_rule) for face in faces])
            crops_done = time.perf_counter()
            predictions = self.image_scorer.predict(crops)
            for index, (face, probability) in enumerate(zip(faces, predictions.probabilities, strict=True)):
                face_results.append(
                    {
                        "index": index,
                        **face.to_dict(),
                        "fake_probability": _rounded(probability),
                        "verdict": self.image_decision.verdict(float(probability)),
                    }
                )
                if min(face.box[2], face.box[3]) < SMALL_FACE_PX:
                    notes.append(f"face {index + 1} is smaller than {SMALL_FACE_PX} px: low confidence")
            fake_probability = _rounded(max(predictions.probabilities))
            if len(faces) > 1:
                notes.append(f"{len(faces)} faces found: the image's verdict is that of its most suspicious face")
            verdict = self.image_decision.verdict(fake_probability)
        else:
            verdict = "no_face"
            notes.append("no face was found, so the image was not scored")
        finished = time.perf_counter()
        return {
            "kind": "image",
            "verdict": verdict,
            "fake_probability": fake_probability,
            "faces": face_results,
            "media": {"width": int(image.shape[1]), "height": int(image.shape[0])},
            "timings": {
                "decode_s": round(decoded - started, 4),
                "detect_s": round(detected - decoded, 4),
                "crop_s": round(crops_done - detected, 4),
                "model_s": round(finished - crops_done, 4),
                "total_s": round(finished - started, 4),
            },
            "decision": self.image_decision.to_dict(),
            "models": self.labels,
            "notes": notes,
        }

    # --- videos -------------------------------------------------------------------------------------------

    def analyze_video(self, path: str | os.PathLike, *, progress: Progress = None) -> dict:
        """Verdict for a video: evenly sampled frames, one track per person, the video as fake as its most
        suspicious person.

        Only the sampled frames are decoded to pixels (the others are only grabbed). Faces are found by a
        full-frame MTCNN pass every `full_detection_every` sampled frames and re-found near their last boxes
        in between (see FULL_DETECTION_EVERY); all crops of all people then go through the frame encoder in
        one batched call.
        """
        started = time.perf_counter()
        info = probe_video(path)
        if info.width * info.height > self.max_image_pixels:
            raise MediaError(f"The video's frames are {info.width}x{info.height} pixels, larger than allowed.")
        wanted = evenly_spaced_indices(info.frame_count, self.video_frames)
        _report(progress, stage="reading frames", frames_done=0, frames_total=len(wanted), faces_found=0)
        decode_s = detect_s = crop_s = 0.0
        frame_numbers: list[int] = []
        faces_per_frame: list[list[Face]] = []
        crops_per_frame: list[list[np.ndarray]] = []
        crop_rule = self.video_model.crop_rule if self.video_model else self.image_model.crop_rule
        faces_found = full_detections = 0
        tracked: list[Face] = []
        since_full_detection = 0
        decode_started = time.perf_counter()
        for frame_number, frame in prefetched(iter_video_frames(path, wanted)):
            detect_started = time.perf_counter()
            decode_s += detect_started - decode_started
            faces: list[Face] | None = None
            if tracked and since_full_detection < self.full_detection_every:
                faces = self.detector.detect_near(frame, tracked)
                if len(faces) < len(tracked):
                    faces = None  # someone was not re-found: look at the whole frame
            if faces is None:
                faces = self.detector.detect(frame)
                full_detections += 1
                since_full_detection = 0
            since_full_detection += 1
            tracked = faces
            crop_started = time.perf_counter()
            detect_s += crop_started - detect_started
            faces_per_frame.append(faces)
            crops_per_frame.append([crop_square(frame, face.box, crop_rule) for face in faces])
            frame_numbers.append(frame_number)
            faces_found += len(faces)
            decode_started = time.perf_counter()
            crop_s += decode_started - crop_started
            _report(
                progress,
                stage="detecting faces",
                frames_done=len(frame_numbers),
                frames_total=len(wanted),
                faces_found=faces_found,
            )
        if not frame_numbers:
            raise MediaError("No frame of the video could be decoded.")
        _report(progress, stage="scoring faces", frames_done=len(frame_numbers), frames_total=len(wanted))
        model_started = time.perf_counter()
        tracks = track_faces(faces_per_frame)
        media = {
            "width": info.width,
            "height": info.height,
            "fps": round(info.fps, 3),
            "frame_count": info.frame_count,
            "duration_s": round(info.duration_s, 3),
            "frames_analyzed": len(frame_numbers),
            "full_detections": full_detections,
        }
        notes: list[str] = []
        if len(frame_numbers) < len(wanted):
            notes.append(f"only {len(frame_numbers)} of {len(wanted)} sampled frames could be decoded")
        frames_out = [{"index": number, "time_s": round(number / info.fps, 3), "faces": []} for number in frame_numbers]
        track_crops = [
            [
                crops_per_frame[position][faces_per_frame[position].index(face)]
                for position, face in zip(track.frame_positions, track.faces, strict=True)
            ]
            for track in tracks
        ]
        # One model call for every crop of every person (batched), then split back per person.
        all_crops = [crop for crops in track_crops for crop in crops]
        all_predictions = self._predict_frames(np.stack(all_crops)) if all_crops else None
        person_results = []
        offset = 0
        for track, crops in zip(tracks, track_crops, strict=True):
            predictions = all_predictions.slice(offset, offset + len(crops))
            offset += len(crops)
            person_results.append(self._score_track(track, predictions, frame_numbers, frames_out))
            if min(track.representative().box[2:]) < SMALL_FACE_PX:
                notes.append(f"person {track.index + 1}'s face is smaller than {SMALL_FACE_PX} px: low confidence")
        if self.video_model is None:
            notes.append("no video model is active: frame scores are aggregated without the sequence model")
        if person_results:
            fake_probability = _rounded(max(person["fake_probability"] for person in person_results))
            verdict = self.video_decision.verdict(fake_probability)
            if len(person_results) > 1:
                notes.append(
                    f"{len(person_results)} people tracked: the video is fake if any of them is, so its verdict "
                    "is that of the most suspicious person"
                )
        else:
            fake_probability = None
            verdict = "no_face"
            notes.append("no face was found in the sampled frames, so the video was not scored")
        finished = time.perf_counter()
        return {
            "kind": "video",
            "verdict": verdict,
            "fake_probability": fake_probability,
            "faces": person_results,
            "frames": frames_out,
            "media": media,
            "timings": {
                "decode_s": round(decode_s, 4),
                "detect_s": round(detect_s, 4),
                "crop_s": round(crop_s, 4),
                "model_s": round(finished - model_started, 4),
                "total_s": round(finished - started, 4),
            },
            "decision": self.video_decision.to_dict(),
            "models": self.labels,
            "notes": notes,
        }

    def _predict_frames(self, crops: np.ndarray) -> FacePredictions:
        """Per-crop outputs of the video model's frame encoder (or of the image model without a video model)."""
        if self.frame_scorer is not None:
            return self.frame_scorer.predict(crops)
        return self.image_scorer.predict(crops)

    def _score_track(
        self, track: Track, predictions: FacePredictions, frame_numbers: list[int], frames_out: list[dict]
    ) -> dict:
        if self.video_model is not None:
            score = self.video_model.score_track(predictions.embeddings, predictions.logits)
            sequence_probability = score.sequence_probability
            aggregate_probability = score.aggregate_probability
            fake_probability = score.fake_probability
        else:
            sequence_probability = None
            aggregate_probability = float(sigmoid(trimmed_mean(logit(predictions.probabilities), 0.2)))
            fake_probability = aggregate_probability
        frame_scores = [_rounded(probability) for probability in predictions.probabilities]
        for position, face, probability in zip(track.frame_positions, track.faces, frame_scores, strict=True):
            frames_out[position]["faces"].append(
                {"track": track.index, "box": [int(value) for value in face.box], "fake_probability": probability}
            )
        representative = track.representative()
        return {
            "index": track.index,
            "box": [int(value) for value in representative.box],
            "confidence": round(float(representative.confidence), 4),
            "fake_probability": _rounded(fake_probability),
            "verdict": self.video_decision.verdict(fake_probability),
            "n_frames": len(track.faces),
            "frame_indices": [frame_numbers[position] for position in track.frame_positions],
            "frame_scores": frame_scores,
            "sequence_probability": None if sequence_probability is None else _rounded(sequence_probability),
            "aggregate_probability": _rounded(aggregate_probability),
        }
