"""Temporal cues of a tracked face: what changes between a sampled frame and the very next one.

A face swap is made frame by frame, so its inner face may flicker from one frame to the next where the hair,
neck and background around it, which come from the original video, do not (the temporal-inconsistency
argument of video detectors such as FTCN or LipForensics). These cues measure that on the platform's own
sampling: at each sampled frame of the main person's track, the face is cut from that frame and from the next
one **with the same box**, so the detector's jitter between frames cannot pass for flicker.

- `change_ratio`: the mean absolute difference of the two crops inside the inner face (the centre half of the
  crop) over the same in the ring around it.
- `residual_ratio`: the same ratio after the second crop is warped onto the first by dense optical flow
  (Farneback), so that what head motion explains is taken out and what is left is the flicker.
- `score_jump`: how much the image model's logit moves between the two frames.

Each is a per-video median over the track's frame pairs. `manage.py temporal_check` measures them on the
training videos; they are not part of the shipped video model (its card says why).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ml.faces import (
    CropRule,
    FaceDetector,
    crop_square,
    evenly_spaced_indices,
    iter_video_frames,
    probe_video,
    track_faces,
)

CUES = ("change_ratio", "residual_ratio", "score_jump")
# Pixel cues are measured on larger grey crops than the model's input: flicker is fine detail.
CUE_CROP_PX = 256
# The warp leaves this many pixels at the crop's edge without a source; they are left out of both regions.
WARP_BORDER_PX = 8


@dataclass(frozen=True)
class VideoTemporalCues:
    """A video's per-pair cues (one row per frame pair of its main track) and their medians."""

    pairs: int
    per_pair: dict[str, np.ndarray]

    def medians(self) -> dict[str, float]:
        return {name: float(np.median(values)) for name, values in self.per_pair.items()}


def _inner_and_ring(values: np.ndarray) -> tuple[float, float]:
    """Mean of `values` (a square map) over its centre half and over the ring around it."""
    size = values.shape[0]
    start, stop = size // 4, size - size // 4
    inner = np.zeros(values.shape, dtype=bool)
    inner[start:stop, start:stop] = True
    return float(values[inner].mean()), float(values[~inner].mean())


def pair_cues(first: np.ndarray, second: np.ndarray) -> dict[str, float]:
    """`change_ratio` and `residual_ratio` of two same-box grey crops (uint8, square, same size)."""
    if first.shape != second.shape or first.ndim != 2 or first.shape[0] != first.shape[1]:
        raise ValueError("pair_cues takes two grey square crops of the same size")
    a, b = first.astype(np.float32), second.astype(np.float32)
    inner, ring = _inner_and_ring(np.abs(a - b))
    # Flow from the second crop to the first, so that remapping the first lands it on the second.
    flow = cv2.calcOpticalFlowFarneback(second, first, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    size = first.shape[0]
    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float32)
    warped = cv2.remap(a, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR)
    border = WARP_BORDER_PX
    residual = np.abs(warped - b)[border:-border, border:-border]
    residual_inner, residual_ring = _inner_and_ring(residual)
    # A floor of one grey level's hundredth keeps a still, noiseless ring from dividing by zero.
    return {
        "change_ratio": inner / max(ring, 1e-2),
        "residual_ratio": residual_inner / max(residual_ring, 1e-2),
    }


def video_temporal_cues(
    path: str | Path,
    *,
    detector: FaceDetector,
    score: Callable[[np.ndarray], np.ndarray],
    rule: CropRule,
    frames: int = 32,
) -> VideoTemporalCues | None:
    """The cues of the main person of a video over `frames` evenly spaced frame pairs (frame t and t + 1), or
    None where no face is tracked. `score` maps crops cut by `rule` (N x S x S x 3) to the image model's logits."""
    info = probe_video(path)
    if info.frame_count < 2:
        return None
    positions = evenly_spaced_indices(info.frame_count - 1, frames)
    wanted = sorted(set(positions) | {position + 1 for position in positions})
    decoded = dict(iter_video_frames(path, wanted))
    tracks = track_faces([detector.detect(decoded[p]) if p in decoded else [] for p in positions])
    if not tracks:
        return None
    main = max(tracks, key=lambda track: len(track.faces))
    model_crops, grey_pairs = [], []
    big = CropRule(margin=rule.margin, size=CUE_CROP_PX)
    for position_number, face in zip(main.frame_positions, main.faces, strict=True):
        frame_number = positions[position_number]
        if frame_number + 1 not in decoded:
            continue
        first, second = decoded[frame_number], decoded[frame_number + 1]
        model_crops += [crop_square(first, face.box, rule), crop_square(second, face.box, rule)]
        grey_pairs.append(
            tuple(cv2.cvtColor(crop_square(frame, face.box, big), cv2.COLOR_RGB2GRAY) for frame in (first, second))
        )
    if not grey_pairs:
        return None
    logits = np.asarray(score(np.stack(model_crops)), dtype=np.float64)
    pixel_cues = [pair_cues(grey_first, grey_second) for grey_first, grey_second in grey_pairs]
    per_pair = {name: np.asarray([cues[name] for cues in pixel_cues]) for name in pixel_cues[0]}
    per_pair["score_jump"] = np.abs(logits[0::2] - logits[1::2])
    return VideoTemporalCues(pairs=len(grey_pairs), per_pair=per_pair)
