"""The evidence behind a verdict, drawn from pixels the analysis already holds: no second decode.

- photos: per face the crop the model scored and a Grad-CAM heatmap over it;
- videos: per tracked person their most confident crop and its heatmap, and for a fake or uncertain person
  the frames that pushed their score up (`key_frames_of`) as small thumbnails with the face boxed.

`ml.pipeline.Analyzer` calls these in the same pass as the analysis, on the crops it scored and the frame
thumbnails it kept while decoding; each returns the faces with their image names filled in and the images.
`explained` adds them to the analysis, with the file's metadata hints, as best-effort steps.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from ml.gradcam import gradcam_heatmaps, overlay_heatmap
from ml.metadata import read_metadata_hints, read_video_metadata_hints
from ml.result import (
    MEAN_LIKE_AGGREGATES,
    VIDEO,
    Analysis,
    Explanation,
    FaceResult,
    FrameResult,
    KeyFrame,
    ScoredFace,
    TrackResult,
    VideoScoring,
)

logger = logging.getLogger(__name__)

# Crops are shown at least this big: the tiny test model's 48 px crop would be unreadable on a page.
MIN_DISPLAY_PX = 192
# Key frames open large on the result page (a dialog up to ~760 px wide): kept at up to 640 px.
THUMBNAIL_MAX_SIDE_PX = 640
KEY_FRAMES_PER_TRACK = 6
KEY_FRAME_VERDICTS = frozenset({"fake", "uncertain"})
# Red, as in the heatmaps: the face that drove the verdict.
BOX_COLOUR = (220, 38, 38)


@dataclass(frozen=True)
class Explainer:
    """The model whose fake logit the heatmaps explain: a Keras model and which of its outputs is the logit."""

    model: Any
    output_index: int = 0
    # The version scores each face with its mirror image (`test_time_flip`): the heatmap explains both views.
    mirror: bool = False


@dataclass(frozen=True)
class Thumbnail:
    """A sampled frame scaled to fit THUMBNAIL_MAX_SIDE_PX, and the scale from the frame's own pixels."""

    pixels: np.ndarray
    scale: float

    @classmethod
    def of(cls, frame: np.ndarray) -> Thumbnail:
        height, width = frame.shape[:2]
        scale = min(1.0, THUMBNAIL_MAX_SIDE_PX / max(height, width))
        small = cv2.resize(
            frame, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
        )
        return cls(pixels=small, scale=scale)

    def boxed(self, box: Sequence[int] | None) -> np.ndarray:
        """A copy with `box` (in the frame's pixels) drawn on it."""
        pixels = self.pixels.copy()
        if box:
            x, y, box_width, box_height = (round(value * self.scale) for value in box)
            cv2.rectangle(pixels, (x, y), (x + box_width, y + box_height), BOX_COLOUR, 2)
        return pixels


class _Images:
    """The explaining images of one analysis, by name, in the order they were made."""

    def __init__(self) -> None:
        self.images: dict[str, np.ndarray] = {}

    def add(self, name: str, pixels: np.ndarray) -> str:
        self.images[name] = pixels
        return name

    def explanation(self) -> Explanation:
        return Explanation(files=tuple(self.images), images=dict(self.images))


def explain_faces(
    faces: Sequence[FaceResult], crops: Sequence[np.ndarray], explainer: Explainer
) -> tuple[tuple[FaceResult, ...], Explanation]:
    """A photo's faces with their crop and heatmap named, and those images (`crops`: one per face, in order)."""
    images = _Images()
    if not faces:
        return (), images.explanation()
    heatmaps = gradcam_heatmaps(
        explainer.model, np.stack(crops), output_index=explainer.output_index, mirror=explainer.mirror
    )
    explained = tuple(
        replace(
            face,
            crop=images.add(f"face-{face.index}-crop.jpg", display_size(crop)),
            heatmap=images.add(f"face-{face.index}-heatmap.jpg", display_size(overlay_heatmap(crop, heatmap))),
        )
        for face, crop, heatmap in zip(faces, crops, heatmaps, strict=True)
    )
    return explained, images.explanation()


def explain_tracks(
    tracks: Sequence[TrackResult],
    representatives: Sequence[tuple[int, np.ndarray]],
    frames: Sequence[FrameResult],
    thumbnails: Mapping[int, Thumbnail],
    explainer: Explainer,
    *,
    fps: float | None,
    scoring: VideoScoring,
) -> tuple[tuple[TrackResult, ...], Explanation]:
    """A video's people with their crop, heatmap and key frames (`key_frames_of`) named, and those images.

    `representatives` holds, in track order, each person's most confident face as (frame number, the crop the
    model scored there); `thumbnails` the sampled frames by frame number.
    """
    images = _Images()
    if not tracks:
        return (), images.explanation()
    crops = np.stack([crop for _frame_number, crop in representatives])
    heatmaps = gradcam_heatmaps(explainer.model, crops, output_index=explainer.output_index, mirror=explainer.mirror)
    boxes = {(frame.index, face.track): face.box for frame in frames for face in frame.faces}
    explained = []
    for track, (crop_frame, crop), heatmap in zip(tracks, representatives, heatmaps, strict=True):
        crop_name = images.add(f"track-{track.index}-crop.jpg", display_size(crop))
        heatmap_name = images.add(f"track-{track.index}-heatmap.jpg", display_size(overlay_heatmap(crop, heatmap)))
        key_frames = tuple(
            KeyFrame(
                index=frame_number,
                time_s=round(frame_number / fps, 3) if fps else None,
                fake_probability=score,
                image=images.add(
                    f"track-{track.index}-frame-{frame_number}.jpg",
                    thumbnails[frame_number].boxed(boxes.get((frame_number, track.index))),
                ),
            )
            for frame_number, score in key_frames_of(track, scoring)
        )
        explained.append(
            replace(track, crop=crop_name, heatmap=heatmap_name, crop_frame=crop_frame, key_frames=key_frames)
        )
    return tuple(explained), images.explanation()


def key_frames_of(track: TrackResult, scoring: VideoScoring) -> list[tuple[int, float]]:
    """The frames that pushed a fake or uncertain person's score up, highest first, at most KEY_FRAMES_PER_TRACK.

    For an average-like aggregate those are the frames scoring above the person's own probability (the ones
    that raised it); for N-of-M, the frames at or over the frame threshold (the ones it counted). A person
    called real has none: nothing drove a fake verdict.
    """
    if track.verdict not in KEY_FRAME_VERDICTS:
        return []
    pairs = [(int(frame), float(score)) for frame, score in zip(track.frame_indices, track.frame_scores, strict=True)]
    if scoring.method in MEAN_LIKE_AGGREGATES:
        pushing = [pair for pair in pairs if pair[1] > track.fake_probability]
    else:
        pushing = [pair for pair in pairs if pair[1] >= scoring.frame_threshold]
    pushing.sort(key=lambda pair: (-pair[1], pair[0]))
    return pushing[:KEY_FRAMES_PER_TRACK]


def display_size(crop: np.ndarray) -> np.ndarray:
    side = crop.shape[0]
    if side >= MIN_DISPLAY_PX:
        return crop
    return cv2.resize(crop, (MIN_DISPLAY_PX, MIN_DISPLAY_PX), interpolation=cv2.INTER_CUBIC)


def explained(
    analysis: Analysis,
    path: str | os.PathLike,
    explain: Callable[[], tuple[tuple[ScoredFace, ...], Explanation]],
    *,
    fatal_errors: tuple[type[BaseException], ...] = (),
) -> Analysis:
    """The analysis with its evidence (`explain()`) and the file's metadata hints, both best-effort.

    Evidence explains a verdict but is not part of it: a failure to draw it keeps the verdict, with a note
    saying the evidence is missing, and is logged. `fatal_errors` are never written off that way (a worker's
    job timeout).
    """
    started = time.perf_counter()
    metadata = _metadata_hints(path, analysis.kind, fatal_errors)
    try:
        faces, explanation = explain()
    except fatal_errors:
        raise
    except Exception:
        logger.exception("The evidence for %s could not be generated", path)
        with_evidence = replace(analysis, metadata=metadata).without_explanation()
    else:
        with_evidence = replace(analysis, faces=faces, explanation=explanation, metadata=metadata)
    return replace(with_evidence, timings=analysis.timings.with_evidence_time(time.perf_counter() - started))


def _metadata_hints(
    path: str | os.PathLike, kind: str, fatal_errors: tuple[type[BaseException], ...]
) -> Mapping[str, Any]:
    """The file's metadata hints (never part of the verdict); a failure to read them is recorded, not raised."""
    try:
        return read_video_metadata_hints(path) if kind == VIDEO else read_metadata_hints(path)
    except fatal_errors:
        raise
    except Exception:
        logger.exception("Metadata hints of %s could not be read", path)
        return {"readable": False, "hints": []}
