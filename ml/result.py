"""What one analysis concludes, typed: the photo's faces or the video's tracked people, their frame scores, the
decision band, the stage timings and the evidence that explains them.

`ml.pipeline.Analyzer` is the one place that builds an `Analysis`. Its JSON form is defined here, beside the
types, so the document the platform stores (`Analysis.to_json`) and the objects every page, export and chart
reads back (`Analysis.from_json`) cannot drift apart. Pixels never go into the JSON: the explaining images
travel in `Explanation.images`, and the crops a shadow candidate rescores in `Analysis.crops`, in memory only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from ml.faces import CropRule

IMAGE = "image"
VIDEO = "video"
# How firm verdicts rank when several faces or people are combined: the input is as fake as its worst one.
VERDICT_SEVERITY = {"real": 0, "uncertain": 1, "fake": 2}
# Written in place of the evidence when drawing it failed; the verdict stands (see Analysis.without_explanation).
EXPLANATION_FAILED_NOTE = "The face crops and heatmaps could not be generated for this scan; the verdict is unaffected."


def rounded(value: float) -> float:
    """Probabilities are stored to six decimals: finer than any decision needs, short in JSON."""
    return round(float(value), 6)


@dataclass(frozen=True)
class Decision:
    """Probability cuts of a model version: `uncertain` strictly between low and high."""

    threshold: float
    uncertain_low: float
    uncertain_high: float

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Decision:
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

    def to_json(self) -> dict[str, float]:
        return {"threshold": self.threshold, "uncertain_low": self.uncertain_low, "uncertain_high": self.uncertain_high}


@dataclass(frozen=True)
class Manipulation:
    """Which kind of fake a face most resembles, from the image model's second head.

    Evidence beside the verdict, never the verdict: that comes from the fake probability alone, so a face
    called real still has a most-like type (it is simply the least unlikely one).
    """

    most_likely: str
    probability: float
    # Every type the head knows, in its order, with its probability.
    distribution: Mapping[str, float]

    @classmethod
    def from_probabilities(cls, types: Sequence[str], probabilities: np.ndarray) -> Manipulation:
        """The guess for one face from its softmax row (or a person's mean row)."""
        values = [rounded(value) for value in np.asarray(probabilities, dtype=np.float64).reshape(-1)]
        best = int(np.argmax(values))
        return cls(
            most_likely=types[best], probability=values[best], distribution=dict(zip(types, values, strict=True))
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "most_likely": self.most_likely,
            "probability": self.probability,
            "distribution": dict(self.distribution),
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any] | None) -> Manipulation | None:
        if not document:
            return None
        return cls(
            most_likely=document["most_likely"],
            probability=document["probability"],
            distribution=dict(document.get("distribution") or {}),
        )


@dataclass(frozen=True)
class KeyFrame:
    """A frame that drove a person's verdict (one of their highest-scoring), with its thumbnail's image name."""

    index: int
    time_s: float | None
    fake_probability: float
    image: str

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "time_s": self.time_s,
            "fake_probability": self.fake_probability,
            "image": self.image,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> KeyFrame:
        return cls(
            index=document["index"],
            time_s=document.get("time_s"),
            fake_probability=document["fake_probability"],
            image=document["image"],
        )


# What a version's settings say when they name no aggregate or no weight (as `ml.video_model.VideoModel` reads them).
DEFAULT_AGGREGATE = "trimmed_mean_logit"
DEFAULT_SEQUENCE_WEIGHT = 0.5
# Aggregates whose frames that count are those above the person's own score (the others are N-of-M).
MEAN_LIKE_AGGREGATES = frozenset({"mean_logit", "trimmed_mean_logit", "top_quarter_logit"})


@dataclass(frozen=True)
class VideoScoring:
    """How a video version turns one person's frame scores into their fake probability, as the pages explain it.

    `method` is the frame aggregate (`ml.video_model.AGGREGATES`), `frame_threshold` the probability at which
    a single frame counts as fake (what N-of-M counts, and the line drawn on the timeline), `sequence_weight`
    the share of the (logit) score that comes from the sequence model reading the frames in order.
    """

    method: str
    frame_threshold: float
    sequence_weight: float
    trim: float | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], *, frame_threshold: float | None = None) -> VideoScoring:
        """The scoring a video version's settings describe. `frame_threshold` stands in where they name none
        (v1 versions: their frames are calibrated like the image model, so its threshold is the frame's)."""
        aggregate = dict(settings.get("aggregate") or {})
        combine = dict(settings.get("combine") or {})
        threshold = settings.get("frame_threshold")
        if threshold is None and "frame_logit_cut" in aggregate:
            threshold = 1.0 / (1.0 + np.exp(-float(aggregate["frame_logit_cut"])))
        if threshold is None:
            threshold = frame_threshold if frame_threshold is not None else settings.get("threshold", 0.5)
        method = str(aggregate.get("method") or DEFAULT_AGGREGATE)
        trim = aggregate.get("trim", 0.2 if method == DEFAULT_AGGREGATE else None)
        return cls(
            method=method,
            frame_threshold=rounded(threshold),
            sequence_weight=float(combine.get("sequence_weight", DEFAULT_SEQUENCE_WEIGHT)),
            trim=None if trim is None else float(trim),
        )

    def frames_over_threshold(self, frame_scores: Sequence[float]) -> int:
        """How many frames score at or above the frame threshold (the N of "N of M frames")."""
        return sum(1 for score in frame_scores if score >= self.frame_threshold)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "method": self.method,
            "frame_threshold": self.frame_threshold,
            "sequence_weight": self.sequence_weight,
        }
        if self.trim is not None:
            document["trim"] = self.trim
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any] | None) -> VideoScoring | None:
        if not document:
            return None
        return cls(
            method=document["method"],
            frame_threshold=document["frame_threshold"],
            sequence_weight=document["sequence_weight"],
            trim=document.get("trim"),
        )


@dataclass(frozen=True)
class ScoredFace:
    """What a photo's face and a video's tracked person share: where, how sure, the verdict, and the evidence.

    `crop` and `heatmap` name images of the analysis' `Explanation` (None where none was made).
    """

    index: int
    box: tuple[int, ...]
    fake_probability: float
    verdict: str
    confidence: float | None = None
    manipulation: Manipulation | None = None
    crop: str | None = None
    heatmap: str | None = None
    # Why this face cannot be judged reliably (too small, the input too low-resolution or too crowded): a
    # firm verdict is then downgraded to `uncertain`; the probability is kept, for the record.
    out_of_scope: str | None = None

    def without_evidence(self) -> ScoredFace:
        return replace(self, crop=None, heatmap=None)

    def _common_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"index": self.index, "box": list(self.box)}
        if self.confidence is not None:
            document["confidence"] = self.confidence
        document.update(
            fake_probability=self.fake_probability,
            verdict=self.verdict,
            manipulation=None if self.manipulation is None else self.manipulation.to_json(),
        )
        if self.out_of_scope is not None:
            document["out_of_scope"] = self.out_of_scope
        return document

    def _evidence_json(self) -> dict[str, Any]:
        return {name: value for name, value in (("crop", self.crop), ("heatmap", self.heatmap)) if value is not None}

    @staticmethod
    def _common_fields(document: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "index": document["index"],
            "box": tuple(document["box"]),
            "fake_probability": document["fake_probability"],
            "verdict": document["verdict"],
            "confidence": document.get("confidence"),
            "manipulation": Manipulation.from_json(document.get("manipulation")),
            "crop": document.get("crop"),
            "heatmap": document.get("heatmap"),
            "out_of_scope": document.get("out_of_scope"),
        }


def deciding_face(faces: Sequence[ScoredFace]) -> ScoredFace:
    """The face or person an input's verdict and probability come from: the worst verdict (fake over uncertain
    over real) and, among those, the highest probability; the first on a tie."""
    return max(faces, key=lambda face: (VERDICT_SEVERITY.get(face.verdict, 1), face.fake_probability))


def out_of_scope(face: ScoredFace, reasons: Sequence[str]) -> ScoredFace:
    """`face` judged with `reasons` it cannot be judged reliably: a firm verdict becomes `uncertain`, the
    probability stays, and the reasons are recorded; unchanged without reasons."""
    if not reasons:
        return face
    return replace(face, verdict="uncertain", out_of_scope="; ".join(reasons))


@dataclass(frozen=True)
class FaceResult(ScoredFace):
    """One face of a photo."""

    landmarks: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        document = self._common_json()
        document["landmarks"] = {name: list(point) for name, point in self.landmarks.items()}
        return {**document, **self._evidence_json()}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> FaceResult:
        landmarks = {name: tuple(point) for name, point in (document.get("landmarks") or {}).items()}
        return cls(**cls._common_fields(document), landmarks=landmarks)


@dataclass(frozen=True)
class TrackResult(ScoredFace):
    """One person tracked through a video's sampled frames: their frame scores and the probabilities combined."""

    frame_indices: tuple[int, ...] = ()
    frame_scores: tuple[float, ...] = ()
    sequence_probability: float | None = None
    aggregate_probability: float | None = None
    # The frame the crop and heatmap come from (the person's most confident detection).
    crop_frame: int | None = None
    key_frames: tuple[KeyFrame, ...] = ()

    @property
    def n_frames(self) -> int:
        return len(self.frame_indices)

    def without_evidence(self) -> TrackResult:
        return replace(self, crop=None, heatmap=None, crop_frame=None, key_frames=())

    def to_json(self) -> dict[str, Any]:
        document = self._common_json()
        document.update(
            n_frames=self.n_frames,
            frame_indices=list(self.frame_indices),
            frame_scores=list(self.frame_scores),
            sequence_probability=self.sequence_probability,
            aggregate_probability=self.aggregate_probability,
            **self._evidence_json(),
        )
        if self.crop_frame is not None:
            document["crop_frame"] = self.crop_frame
        document["key_frames"] = [key_frame.to_json() for key_frame in self.key_frames]
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> TrackResult:
        return cls(
            **cls._common_fields(document),
            frame_indices=tuple(document.get("frame_indices") or ()),
            frame_scores=tuple(document.get("frame_scores") or ()),
            sequence_probability=document.get("sequence_probability"),
            aggregate_probability=document.get("aggregate_probability"),
            crop_frame=document.get("crop_frame"),
            key_frames=tuple(KeyFrame.from_json(frame) for frame in document.get("key_frames") or ()),
        )


@dataclass(frozen=True)
class FrameFace:
    """One tracked person's face in one sampled frame."""

    track: int
    box: tuple[int, ...]
    fake_probability: float

    def to_json(self) -> dict[str, Any]:
        return {"track": self.track, "box": list(self.box), "fake_probability": self.fake_probability}


@dataclass(frozen=True)
class FrameResult:
    """One sampled frame of a video and the tracked faces in it."""

    index: int
    time_s: float | None
    faces: tuple[FrameFace, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "time_s": self.time_s, "faces": [face.to_json() for face in self.faces]}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> FrameResult:
        faces = tuple(
            FrameFace(track=face["track"], box=tuple(face.get("box") or ()), fake_probability=face["fake_probability"])
            for face in document.get("faces") or ()
        )
        return cls(index=document["index"], time_s=document.get("time_s"), faces=faces)


@dataclass(frozen=True)
class MediaInfo:
    """The analysed file's pixels and, for a video, its timing and how many frames were looked at."""

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frame_count: int | None = None
    duration_s: float | None = None
    frames_analyzed: int | None = None
    # Sampled frames that got a full-frame MTCNN pass (the others re-found tracked faces near their last box).
    full_detections: int | None = None

    @classmethod
    def from_json(cls, document: Mapping[str, Any] | None) -> MediaInfo:
        return _known_fields(cls, document)


@dataclass(frozen=True)
class Timings:
    """Seconds per stage, in the order the stages run; `total_s` is the analysis (decode to verdict) and
    `evidence_s` what explaining it took afterwards (heatmaps, key frames, metadata, stored images)."""

    decode_s: float | None = None
    detect_s: float | None = None
    crop_s: float | None = None
    model_s: float | None = None
    total_s: float | None = None
    evidence_s: float | None = None

    @classmethod
    def from_json(cls, document: Mapping[str, Any] | None) -> Timings:
        return _known_fields(cls, document)

    def with_evidence_time(self, seconds: float) -> Timings:
        """These timings with `seconds` more spent on evidence (the platform adds storing the images)."""
        return replace(self, evidence_s=round((self.evidence_s or 0.0) + seconds, 4))


@dataclass(frozen=True)
class ModelLabels:
    """Which model versions produced the analysis, by label (`name@version`)."""

    image: str | None = None
    video: str | None = None


@dataclass(frozen=True)
class Explanation:
    """Why the faces got their scores: a face crop and Grad-CAM heatmap per face or person, key-frame thumbnails.

    `files` names every image, as the faces refer to them; `images` holds their RGB pixels while the analysis
    is in memory (the platform stores each under its name) and is empty when a stored result is read back.
    """

    method: str = "grad-cam"
    files: tuple[str, ...] = ()
    images: Mapping[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Analysis:
    """The result of analysing one photo (`faces` are FaceResults) or video (`faces` are TrackResults).

    `verdict` is the worst of the faces' or people's verdicts (fake over uncertain over real) and
    `fake_probability` that of the face or person it comes from; `no_face` (and no probability) when none was
    found. `metadata` (the file's own metadata hints, never part of the verdict) and `explanation` are there
    when the analysis was asked to explain itself. `crops` holds the crops cut in the same pass, per crop rule,
    one (n x S x S x 3) array per face or person in time order, so another model can rescore them without
    decoding the media again; it is never stored.
    """

    kind: str
    verdict: str
    fake_probability: float | None
    faces: tuple[ScoredFace, ...] = ()
    frames: tuple[FrameResult, ...] = ()
    media: MediaInfo = field(default_factory=MediaInfo)
    timings: Timings = field(default_factory=Timings)
    decision: Decision | None = None
    models: ModelLabels = field(default_factory=ModelLabels)
    notes: tuple[str, ...] = ()
    # Why the verdict was downgraded to `uncertain` (the input is outside what the models can judge); empty
    # when it was not. Each reason is in `notes` too.
    out_of_scope: tuple[str, ...] = ()
    # Videos: how each person's frame scores became their probability (None for photos and older results).
    scoring: VideoScoring | None = None
    metadata: Mapping[str, Any] | None = None
    explanation: Explanation | None = None
    crops: Mapping[CropRule, tuple[np.ndarray, ...]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_video(self) -> bool:
        return self.kind == VIDEO

    @property
    def deciding_face(self) -> ScoredFace | None:
        """The face or person the verdict comes from (see `deciding_face`); None without faces."""
        return deciding_face(self.faces) if self.faces else None

    def without_explanation(self, note: str = EXPLANATION_FAILED_NOTE) -> Analysis:
        """The analysis as it stands when its evidence could not be made or kept: same verdict, a note why."""
        return replace(
            self,
            faces=tuple(face.without_evidence() for face in self.faces),
            explanation=None,
            notes=(*self.notes, note),
        )

    def to_json(self) -> dict[str, Any]:
        """The document the platform stores and exports (scans/schemas/scan-export.schema.json, `result`)."""
        document: dict[str, Any] = {
            "kind": self.kind,
            "verdict": self.verdict,
            "fake_probability": self.fake_probability,
            "faces": [face.to_json() for face in self.faces],
        }
        if self.is_video:
            document["frames"] = [frame.to_json() for frame in self.frames]
        document.update(
            media=_without_none(self.media),
            timings=_without_none(self.timings),
            decision=None if self.decision is None else self.decision.to_json(),
            models={"image": self.models.image, "video": self.models.video},
            notes=list(self.notes),
            out_of_scope=list(self.out_of_scope),
        )
        if self.scoring is not None:
            document["scoring"] = self.scoring.to_json()
        if self.metadata is not None:
            document["metadata"] = dict(self.metadata)
        if self.explanation is not None:
            document["evidence"] = {"files": list(self.explanation.files), "heatmap_method": self.explanation.method}
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any], *, kind: str) -> Analysis:
        """A stored document read back. `kind` is the scan's, for documents that predate the `kind` key; an
        empty document (a scan not done yet) gives an analysis with no verdict and no faces."""
        kind = document.get("kind") or kind
        face_type = TrackResult if kind == VIDEO else FaceResult
        evidence = document.get("evidence")
        decision = document.get("decision")
        models = document.get("models") or {}
        return cls(
            kind=kind,
            verdict=document.get("verdict") or "",
            fake_probability=document.get("fake_probability"),
            faces=tuple(face_type.from_json(face) for face in document.get("faces") or ()),
            frames=tuple(FrameResult.from_json(frame) for frame in document.get("frames") or ()),
            media=MediaInfo.from_json(document.get("media")),
            timings=Timings.from_json(document.get("timings")),
            decision=None
            if not decision
            else Decision(**{key: decision[key] for key in ("threshold", "uncertain_low", "uncertain_high")}),
            models=ModelLabels(image=models.get("image"), video=models.get("video")),
            notes=tuple(document.get("notes") or ()),
            out_of_scope=tuple(document.get("out_of_scope") or ()),
            scoring=VideoScoring.from_json(document.get("scoring")),
            metadata=document.get("metadata"),
            explanation=None
            if evidence is None
            else Explanation(
                method=evidence.get("heatmap_method") or "grad-cam", files=tuple(evidence.get("files") or ())
            ),
        )


@dataclass(frozen=True)
class ShadowFace:
    """A shadow candidate's score for one face or person of the analysis it rescored."""

    index: int
    fake_probability: float
    verdict: str


@dataclass(frozen=True)
class ShadowOutcome:
    """What a shadow candidate concluded from the very crops an analysis scored (see ml.shadow)."""

    verdict: str
    fake_probability: float | None
    faces: tuple[ShadowFace, ...]
    # decode_s is 0: the candidate scores crops cut in the analysis' own pass.
    timings: Mapping[str, float]
    model: str


def _without_none(record: Any) -> dict[str, Any]:
    return {item.name: getattr(record, item.name) for item in fields(record) if getattr(record, item.name) is not None}


def _known_fields(record_type: type, document: Mapping[str, Any] | None) -> Any:
    """A record from the document's keys it knows (a stored document may carry keys a newer one dropped)."""
    names = {item.name for item in fields(record_type)}
    return record_type(**{key: value for key, value in (document or {}).items() if key in names})
