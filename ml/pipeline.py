"""The analysis pipeline the platform calls: media in, a typed `ml.result.Analysis` out.

An `Analyzer` holds MTCNN, the image model and (optionally) the video model. Building one loads the weights;
a worker builds it once per process and reuses it for every job (see `scans.analyzers`). Each call decodes
the media once: detection, scoring, the explanation (crops, Grad-CAM heatmaps, key frames, metadata hints)
and the crops another model may rescore all come from that one pass.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ml.errors import MediaError
from ml.explain import Explainer, Thumbnail, explain_faces, explain_tracks, explained
from ml.faces import (
    CropRule,
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
from ml.result import (
    IMAGE,
    VIDEO,
    Analysis,
    Decision,
    FaceResult,
    FrameFace,
    FrameResult,
    Manipulation,
    MediaInfo,
    ModelLabels,
    ScoredFace,
    Timings,
    TrackResult,
    VideoScoring,
    deciding_face,
    out_of_scope,
    rounded,
)
from ml.runtime import configure_tensorflow
from ml.video_model import VideoModel, trimmed_mean

SMALL_FACE_PX = 40
# Beyond these the verdict is given but the input is outside what the models were made for.
SCOPE_MAX_FACES = 8
SCOPE_MIN_SIDE_PX = 128
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


def _report(progress: Progress, **payload: object) -> None:
    if progress is not None:
        progress(payload)


def _seconds(value: float) -> float:
    return round(value, 4)


def scope_notes(*, faces: int, width: int | None, height: int | None) -> list[str]:
    """Why a whole input is outside the models' scope: more faces than the service is designed for (group
    photos, crowds) or a very low-resolution picture. Each downgrades a firm verdict to `uncertain`."""
    notes = []
    if faces > SCOPE_MAX_FACES:
        notes.append(
            f"{faces} faces found, more than the {SCOPE_MAX_FACES} this service is designed for: "
            "crowd scenes are out of scope and each face is small"
        )
    if width and height and min(width, height) < SCOPE_MIN_SIDE_PX:
        notes.append(
            f"very low resolution ({width}x{height} px, under {SCOPE_MIN_SIDE_PX} px on the short side): "
            "too little detail for a reliable verdict"
        )
    return notes


def small_face_reason(subject: str, box: Sequence[int]) -> str | None:
    """Why a face is too small to judge (`subject`: "face 2", "person 1's face"), or None when it is not."""
    side = int(min(box[2], box[3]))
    if side >= SMALL_FACE_PX:
        return None
    return f"{subject} is {side} px across, smaller than the {SMALL_FACE_PX} px needed for a reliable verdict"


def judged(
    faces: Sequence[ScoredFace], own_reasons: Sequence[str | None], input_reasons: Sequence[str]
) -> tuple[tuple[ScoredFace, ...], str, float, tuple[str, ...]]:
    """The faces (or people) with out-of-scope ones downgraded, and the input's verdict, probability and the
    reasons that downgraded it.

    A face too small to judge, or any face of an input that is itself out of scope, cannot be called real
    or fake: its verdict becomes `uncertain` and the reason is kept. The input's verdict is its deciding
    face's (`ml.result.deciding_face`), so a clearly fake face elsewhere in the picture still makes it fake.
    """
    reasons_per_face = [[*([own] if own else []), *input_reasons] for own in own_reasons]
    scoped = tuple(out_of_scope(face, reasons) for face, reasons in zip(faces, reasons_per_face, strict=True))
    deciding = deciding_face(scoped)
    position = next(index for index, face in enumerate(scoped) if face is deciding)
    reasons = tuple(reasons_per_face[position])
    return scoped, deciding.verdict, deciding.fake_probability, reasons


def _manipulation(types: Sequence[str], probabilities: np.ndarray | None) -> Manipulation | None:
    """The most-like manipulation type of one face (or a person's frames, averaged); None without the head."""
    if probabilities is None or not types:
        return None
    return Manipulation.from_probabilities(types, np.asarray(probabilities).reshape(-1, len(types)).mean(axis=0))


def _crops_by_rule(image: np.ndarray, faces: Sequence[Face], rules: Sequence[CropRule]) -> dict[CropRule, list]:
    return {rule: [crop_square(image, face.box, rule) for face in faces] for rule in rules}


class Analyzer:
    """Holds MTCNN + the image model (+ the video model); built once per worker process, reused across jobs.

    `fatal_errors` are exceptions that end an analysis even inside its best-effort steps (the explanation and
    the metadata hints, whose failure is otherwise noted and the verdict kept): a worker passes its job-timeout
    exception, so that a stuck analysis is stopped rather than written off as missing evidence.
    """

    def __init__(
        self,
        image_model: ModelSpec,
        video_model: ModelSpec | None = None,
        *,
        video_frames: int = 32,
        max_image_pixels: int = 40_000_000,
        full_detection_every: int = FULL_DETECTION_EVERY,
        fatal_errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        configure_tensorflow()
        self.image_spec = image_model
        self.video_spec = video_model
        self.video_frames = max(1, int(video_frames))
        self.max_image_pixels = int(max_image_pixels)
        self.fatal_errors = fatal_errors
        self.image_model = ImageModel.load(image_model.weights_path, image_model.settings)
        self.image_scorer = ImageScorer(self.image_model)
        self.image_decision = Decision.from_settings(image_model.settings)
        self.video_model = (
            VideoModel.load(video_model.weights_path, video_model.settings, image_model=self.image_model)
            if video_model
            else None
        )
        self.frame_scorer = FrameScorer(self.video_model) if self.video_model is not None else None
        self.full_detection_every = max(1, int(full_detection_every))
        self.video_decision = Decision.from_settings(video_model.settings if video_model else image_model.settings)
        # Without a video model a person's score is the trimmed mean of their frame logits (`_score_track`).
        self.video_scoring = VideoScoring.from_settings(
            video_model.settings if video_model else {"combine": {"sequence_weight": 0.0}},
            frame_threshold=self.image_decision.threshold,
        )
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
        scorers = [(self.image_scorer, self._image_explainer())]
        if self.frame_scorer is not None:
            scorers.append((self.frame_scorer, self._frame_explainer()))
        for scorer, explainer in scorers:
            blank = np.zeros((1, scorer.crop_rule.size, scorer.crop_rule.size, 3), np.uint8)
            scorer.predict(blank)
            gradcam_heatmaps(explainer.model, blank, output_index=explainer.output_index)

    @property
    def labels(self) -> dict:
        return {IMAGE: self.image_spec.label, VIDEO: self.video_spec.label if self.video_spec else None}

    @property
    def _model_labels(self) -> ModelLabels:
        return ModelLabels(image=self.image_spec.label, video=self.video_spec.label if self.video_spec else None)

    @property
    def _frame_scorer(self) -> ImageScorer | FrameScorer:
        """What scores a video's face crops: the video model's frame encoder, or the image model without one."""
        return self.frame_scorer if self.frame_scorer is not None else self.image_scorer

    def _image_explainer(self) -> Explainer:
        return Explainer(self.image_model.classifier, output_index=0, mirror=self.image_model.test_time_flip)

    def _frame_explainer(self) -> Explainer:
        # The frame encoder answers (embedding, logit, ...): the logit is its second output. Where it is the image
        # model's own network, the image explainer (traced already) explains frames too.
        if self.video_model is not None and self.video_model.frame_encoder is not self.image_model.features:
            return Explainer(self.video_model.frame_encoder, output_index=1, mirror=self.video_model.test_time_flip)
        return self._image_explainer()

    def analyze(
        self,
        path: str | os.PathLike,
        *,
        kind: str,
        progress: Progress = None,
        explain: bool = False,
        crop_rules: Sequence[CropRule] = (),
    ) -> Analysis:
        """`analyze_image` or `analyze_video`, by `kind`."""
        analyze = self.analyze_video if kind == VIDEO else self.analyze_image
        return analyze(path, progress=progress, explain=explain, crop_rules=crop_rules)

    # --- images -------------------------------------------------------------------------------------------

    def analyze_image(
        self,
        path: str | os.PathLike,
        *,
        progress: Progress = None,
        explain: bool = False,
        crop_rules: Sequence[CropRule] = (),
    ) -> Analysis:
        """Verdict for a photo: every face scored; the photo is as fake as its most suspicious face.

        With `explain`, also its evidence (see `ml.explain`) and metadata hints; `crop_rules` are further crop
        rules whose crops of the same faces the analysis keeps (`Analysis.crops`), for a shadow candidate.
        """
        started = time.perf_counter()
        _report(progress, stage="decoding")
        image = load_image(path, max_pixels=self.max_image_pixels)
        decoded = time.perf_counter()
        _report(progress, stage="detecting faces")
        faces = self.detector.detect(image)
        detected = time.perf_counter()
        _report(progress, stage="scoring faces", faces_found=len(faces))
        rule = self.image_model.crop_rule
        crops = _crops_by_rule(image, faces, [rule, *crop_rules])
        crops_done = time.perf_counter()
        notes: list[str] = []
        face_results: list[FaceResult] = []
        fake_probability = None
        height, width = int(image.shape[0]), int(image.shape[1])
        input_reasons = scope_notes(faces=len(faces), width=width, height=height)
        downgraded: tuple[str, ...] = ()
        if faces:
            # All faces of the photo go through the model in one batched call.
            predictions = self.image_scorer.predict(np.stack(crops[rule]))
            for index, face in enumerate(faces):
                probability = float(predictions.probabilities[index])
                face_results.append(
                    FaceResult(
                        index=index,
                        box=tuple(int(value) for value in face.box),
                        confidence=round(float(face.confidence), 4),
                        landmarks={name: (int(x), int(y)) for name, (x, y) in face.landmarks.items()},
                        fake_probability=rounded(probability),
                        verdict=self.image_decision.verdict(probability),
                        manipulation=_manipulation(
                            self.image_scorer.manipulation_types,
                            None if predictions.manipulation is None else predictions.manipulation[index],
                        ),
                    )
                )
            small = [small_face_reason(f"face {face.index + 1}", face.box) for face in face_results]
            notes.extend(reason for reason in small if reason)
            scoped, verdict, fake_probability, downgraded = judged(face_results, small, input_reasons)
            face_results = list(scoped)
            if len(faces) > 1:
                notes.append(f"{len(faces)} faces found: the image's verdict is that of its most suspicious face")
        else:
            verdict = "no_face"
            notes.append("no face was found, so the image was not scored")
        notes.extend(input_reasons)
        finished = time.perf_counter()
        analysis = Analysis(
            kind=IMAGE,
            verdict=verdict,
            fake_probability=fake_probability,
            faces=tuple(face_results),
            media=MediaInfo(width=width, height=height),
            timings=Timings(
                decode_s=_seconds(decoded - started),
                detect_s=_seconds(detected - decoded),
                crop_s=_seconds(crops_done - detected),
                model_s=_seconds(finished - crops_done),
                total_s=_seconds(finished - started),
            ),
            decision=self.image_decision,
            models=self._model_labels,
            notes=tuple(notes),
            out_of_scope=downgraded,
            crops={
                crop_rule: tuple(np.stack([crop]) for crop in face_crops) for crop_rule, face_crops in crops.items()
            },
        )
        if not explain:
            return analysis
        return explained(
            analysis,
            path,
            lambda: explain_faces(analysis.faces, crops[rule], self._image_explainer()),
            fatal_errors=self.fatal_errors,
        )

    # --- videos -------------------------------------------------------------------------------------------

    def analyze_video(
        self,
        path: str | os.PathLike,
        *,
        progress: Progress = None,
        explain: bool = False,
        crop_rules: Sequence[CropRule] = (),
    ) -> Analysis:
        """Verdict for a video: evenly sampled frames, one track per person, the video as fake as its most
        suspicious person.

        Only the sampled frames are decoded to pixels (the others are only grabbed). Faces are found by a
        full-frame MTCNN pass every `full_detection_every` sampled frames and re-found near their last boxes
        in between (see FULL_DETECTION_EVERY); all crops of all people then go through the frame encoder in
        one batched call. With `explain`, a thumbnail of each sampled frame is kept as it goes by, for the key
        frames; `crop_rules` as for `analyze_image`.
        """
        started = time.perf_counter()
        info = probe_video(path)
        if info.width * info.height > self.max_image_pixels:
            raise MediaError(f"The video's frames are {info.width}x{info.height} pixels, larger than allowed.")
        wanted = evenly_spaced_indices(info.frame_count, self.video_frames)
        _report(progress, stage="reading frames", frames_done=0, frames_total=len(wanted), faces_found=0)
        decode_s = detect_s = crop_s = thumbnail_s = 0.0
        frame_numbers: list[int] = []
        faces_per_frame: list[list[Face]] = []
        rule = self._frame_scorer.crop_rule
        rules = [rule, *crop_rules]
        crops_per_frame: list[dict[CropRule, list]] = []
        thumbnails: dict[int, Thumbnail] = {}
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
            crops_per_frame.append(_crops_by_rule(frame, faces, rules))
            frame_numbers.append(frame_number)
            faces_found += len(faces)
            thumbnail_started = time.perf_counter()
            crop_s += thumbnail_started - crop_started
            if explain:
                thumbnails[frame_number] = Thumbnail.of(frame)
            decode_started = time.perf_counter()
            thumbnail_s += decode_started - thumbnail_started
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
        notes: list[str] = []
        if len(frame_numbers) < len(wanted):
            notes.append(f"only {len(frame_numbers)} of {len(wanted)} sampled frames could be decoded")
        fps = round(info.fps, 3)
        frame_faces: list[list[FrameFace]] = [[] for _ in frame_numbers]
        # Each person's crops in time order, per crop rule.
        track_crops = {
            crop_rule: [
                [
                    crops_per_frame[position][crop_rule][faces_per_frame[position].index(face)]
                    for position, face in zip(track.frame_positions, track.faces, strict=True)
                ]
                for track in tracks
            ]
            for crop_rule in rules
        }
        # One model call for every crop of every person (batched), then split back per person.
        all_crops = [crop for crops in track_crops[rule] for crop in crops]
        all_predictions = self._frame_scorer.predict(np.stack(all_crops)) if all_crops else None
        people: list[TrackResult] = []
        offset = 0
        for track, crops in zip(tracks, track_crops[rule], strict=True):
            predictions = all_predictions.slice(offset, offset + len(crops))
            offset += len(crops)
            people.append(self._score_track(track, predictions, frame_numbers, frame_faces))
        if self.video_model is None:
            notes.append("no video model is active: frame scores are aggregated without the sequence model")
        input_reasons = scope_notes(faces=len(people), width=info.width, height=info.height)
        downgraded: tuple[str, ...] = ()
        if people:
            small = [small_face_reason(f"person {person.index + 1}'s face", person.box) for person in people]
            notes.extend(reason for reason in small if reason)
            scoped, verdict, fake_probability, downgraded = judged(people, small, input_reasons)
            people = list(scoped)
            if len(people) > 1:
                notes.append(
                    f"{len(people)} people tracked: the video is fake if any of them is, so its verdict "
                    "is that of the most suspicious person"
                )
        else:
            fake_probability = None
            verdict = "no_face"
            notes.append("no face was found in the sampled frames, so the video was not scored")
        notes.extend(input_reasons)
        finished = time.perf_counter()
        analysis = Analysis(
            kind=VIDEO,
            verdict=verdict,
            fake_probability=fake_probability,
            faces=tuple(people),
            frames=tuple(
                FrameResult(index=number, time_s=round(number / info.fps, 3), faces=tuple(faces))
                for number, faces in zip(frame_numbers, frame_faces, strict=True)
            ),
            media=MediaInfo(
                width=info.width,
                height=info.height,
                fps=fps,
                frame_count=info.frame_count,
                duration_s=round(info.duration_s, 3),
                frames_analyzed=len(frame_numbers),
                full_detections=full_detections,
            ),
            timings=Timings(
                decode_s=_seconds(decode_s),
                detect_s=_seconds(detect_s),
                crop_s=_seconds(crop_s),
                model_s=_seconds(finished - model_started),
                total_s=_seconds(finished - started - thumbnail_s),
            ),
            decision=self.video_decision,
            models=self._model_labels,
            notes=tuple(notes),
            out_of_scope=downgraded,
            scoring=self.video_scoring,
            crops={
                crop_rule: tuple(np.stack(crops) for crops in per_track) for crop_rule, per_track in track_crops.items()
            },
        )
        if not explain:
            return analysis

        def explain_people() -> tuple:
            representatives = []
            for track, crops in zip(tracks, track_crops[rule], strict=True):
                offset = track.faces.index(track.representative())
                representatives.append((frame_numbers[track.frame_positions[offset]], crops[offset]))
            return explain_tracks(
                analysis.faces,
                representatives,
                analysis.frames,
                thumbnails,
                self._frame_explainer(),
                fps=fps,
                scoring=self.video_scoring,
            )

        with_evidence = explained(analysis, path, explain_people, fatal_errors=self.fatal_errors)
        return replace(with_evidence, timings=with_evidence.timings.with_evidence_time(thumbnail_s))

    def _score_track(
        self,
        track: Track,
        predictions: FacePredictions,
        frame_numbers: list[int],
        frame_faces: list[list[FrameFace]],
    ) -> TrackResult:
        if self.video_model is not None:
            score = self.video_model.score_track(predictions.embeddings, predictions.logits)
            sequence_probability = score.sequence_probability
            aggregate_probability = score.aggregate_probability
            fake_probability = score.fake_probability
        else:
            sequence_probability = None
            aggregate_probability = float(sigmoid(trimmed_mean(logit(predictions.probabilities), 0.2)))
            fake_probability = aggregate_probability
        frame_scores = [rounded(probability) for probability in predictions.probabilities]
        for position, face, probability in zip(track.frame_positions, track.faces, frame_scores, strict=True):
            frame_faces[position].append(
                FrameFace(track=track.index, box=tuple(int(value) for value in face.box), fake_probability=probability)
            )
        representative = track.representative()
        return TrackResult(
            index=track.index,
            box=tuple(int(value) for value in representative.box),
            confidence=round(float(representative.confidence), 4),
            fake_probability=rounded(fake_probability),
            verdict=self.video_decision.verdict(fake_probability),
            manipulation=_manipulation(self._frame_scorer.manipulation_types, predictions.manipulation),
            frame_indices=tuple(frame_numbers[position] for position in track.frame_positions),
            frame_scores=tuple(frame_scores),
            sequence_probability=None if sequence_probability is None else rounded(sequence_probability),
            aggregate_probability=rounded(aggregate_probability),
        )
