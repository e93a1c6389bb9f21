"""Face pipeline: decode media, find faces with MTCNN, crop them with one fixed rule, track them across frames.

The crop rule (`CropRule`) is stored in each model version's settings and used unchanged by training
(`prepare_faces`) and inference (`ml.pipeline`), so the model always sees faces framed the same way.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ml.errors import MediaError

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
# Re-detection around a tracked face: a region this many times the face's longer side, resized to this many
# pixels (the face then spans about 64 px, plenty for MTCNN's 48 px output network).
REDETECT_EXPAND = 2.0
REDETECT_REGION_PX = 128


@dataclass(frozen=True)
class CropRule:
    """How a detected face box becomes the model's input square.

    The square is centred on the MTCNN box, its side is the box's longer side times (1 + 2 * margin), it is
    shifted (never padded) to stay inside the image, shrunk only when the image is smaller than it, and
    resized to `size` pixels (area interpolation down, bilinear up). Padding is avoided on purpose: a black
    border that appears for one data source only would be a shortcut the model could learn.
    """

    margin: float = 0.15
    size: int = 128

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> CropRule:
        values = values or {}
        return cls(margin=float(values.get("margin", cls.margin)), size=int(values.get("size", cls.size)))


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the full-resolution image."""

    box: tuple[int, int, int, int]  # x, y, width, height
    confidence: float
    landmarks: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]

    def to_dict(self) -> dict:
        return {
            "box": [int(value) for value in self.box],
            "confidence": round(float(self.confidence), 4),
            "landmarks": {name: [int(x), int(y)] for name, (x, y) in self.landmarks.items()},
        }


def square_region(height: int, width: int, box: Sequence[float], rule: CropRule) -> tuple[int, int, int]:
    """Left, top and side of the face square `rule` cuts for `box` (x, y, w, h) from a `height` x `width` image."""
    x, y, box_width, box_height = (float(value) for value in box)
    side = max(box_width, box_height) * (1.0 + 2.0 * rule.margin)
    side = int(round(min(side, height, width)))
    side = max(side, 1)
    centre_x, centre_y = x + box_width / 2.0, y + box_height / 2.0
    left = int(round(centre_x - side / 2.0))
    top = int(round(centre_y - side / 2.0))
    left = min(max(left, 0), width - side)
    top = min(max(top, 0), height - side)
    return left, top, side


def crop_square(image: np.ndarray, box: Sequence[float], rule: CropRule) -> np.ndarray:
    """The face square of `image` (H x W x 3 uint8) for `box` (x, y, w, h), resized to `rule.size`."""
    left, top, side = square_region(image.shape[0], image.shape[1], box, rule)
    square = image[top : top + side, left : left + side]
    interpolation = cv2.INTER_AREA if side > rule.size else cv2.INTER_LINEAR
    return cv2.resize(square, (rule.size, rule.size), interpolation=interpolation)


def load_image(path: str | os.PathLike, *, max_pixels: int = 40_000_000) -> np.ndarray:
    """Decode an image file to an RGB uint8 array, applying its EXIF orientation.

    Raises MediaError for anything Pillow cannot read or that exceeds `max_pixels`.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                if opened.width * opened.height > max_pixels:
                    raise MediaError(
                        f"The image is {opened.width}x{opened.height} pixels; the limit is {max_pixels:,} pixels."
                    )
                # Animated formats: the first frame is the picture people see as a thumbnail.
                opened.seek(0)
                oriented = ImageOps.exif_transpose(opened)
                return np.asarray(oriented.convert("RGB"))
    except MediaError:
        raise
    except FileNotFoundError as exc:
        raise MediaError("The file is missing.") from exc
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError("The file is not an image that can be read (unknown or unsupported format).") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise MediaError("The image is corrupt or truncated and cannot be decoded.") from exc


class FaceDetector:
    """MTCNN wrapped with the project's rules: downscale large inputs, map boxes back, drop weak detections.

    MTCNN's cost grows with the pixel count while faces in a 4K frame are large, so images whose longer side
    exceeds `detect_max_side` are detected on a downscaled copy; boxes and landmarks are then scaled back so
    that crops are cut from the full-resolution image. The networks run as compiled graphs
    (`ml.mtcnn_runner`): the same weights and box logic as the `mtcnn` package, a fraction of its overhead.

    For videos, `detect_near` re-finds already tracked faces in small regions around their last boxes, which
    costs a few percent of a full-frame detection (see `ml.pipeline.Analyzer.analyze_video`).
    """

    def __init__(
        self,
        *,
        detect_max_side: int = 960,
        min_confidence: float = 0.9,
        min_face_size: int = 20,
        device: str | None = None,
    ) -> None:
        from ml.mtcnn_runner import CompiledMTCNN
        from ml.runtime import compute_device

        self.detect_max_side = detect_max_side
        self.min_confidence = min_confidence
        self.min_face_size = min_face_size
        self._mtcnn = CompiledMTCNN(device=device or compute_device())

    def warm_up(self) -> None:
        """Compile MTCNN's graphs now rather than during the first scan."""
        self._mtcnn.warm_up()

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an RGB uint8 image, most confident first, in full-resolution coordinates."""
        height, width = image.shape[:2]
        if height < 12 or width < 12:
            return []
        scale = min(1.0, self.detect_max_side / max(height, width))
        small = image
        if scale < 1.0:
            small = cv2.resize(
                image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
            )
        raw_faces = self._mtcnn.detect(np.ascontiguousarray(small), min_face_size=self.min_face_size)[0]
        return self._faces(raw_faces, scale=scale, offset=(0, 0), width=width, height=height)

    def detect_near(
        self,
        image: np.ndarray,
        previous: Sequence[Face],
        *,
        expand: float = REDETECT_EXPAND,
        region_px: int = REDETECT_REGION_PX,
    ) -> list[Face]:
        """The faces found again near `previous` faces (boxes from an earlier frame of the same video).

        Each previous box gives a square region `expand` times its longer side around its centre (kept inside
        the image), resized to `region_px`; all regions go through MTCNN as one batch, with the minimum face
        size set to a third of the expected face. Faces found in two overlapping regions are kept once.
        A person who left the region is not found: the caller falls back to a full detection.
        """
        height, width = image.shape[:2]
        regions, placements = [], []
        for face in previous:
            x, y, box_width, box_height = face.box
            side = int(round(min(max(box_width, box_height) * expand, height, width)))
            if side < 12:
                continue
            centre_x, centre_y = x + box_width / 2.0, y + box_height / 2.0
            left = min(max(int(round(centre_x - side / 2.0)), 0), width - side)
            top = min(max(int(round(centre_y - side / 2.0)), 0), height - side)
            region = image[top : top + side, left : left + side]
            interpolation = cv2.INTER_AREA if side > region_px else cv2.INTER_LINEAR
            regions.append(cv2.resize(region, (region_px, region_px), interpolation=interpolation))
            placements.append((region_px / side, (left, top)))
        if not regions:
            return []
        min_face = max(12, int(region_px / expand / 3))
        found: list[Face] = []
        for raw_faces, (scale, offset) in zip(
            self._mtcnn.detect(np.stack(regions), min_face_size=min_face), placements, strict=True
        ):
            found.extend(self._faces(raw_faces, scale=scale, offset=offset, width=width, height=height))
        found.sort(key=lambda face: face.confidence, reverse=True)
        unique: list[Face] = []
        for face in found:
            if all(box_iou(face.box, kept.box) < 0.5 for kept in unique):
                unique.append(face)
        return unique

    def _faces(
        self, raw_faces: list[dict], *, scale: float, offset: tuple[int, int], width: int, height: int
    ) -> list[Face]:
        """MTCNN's raw detections as Faces in full-resolution coordinates, weak ones dropped, best first."""
        offset_x, offset_y = offset
        faces = []
        for raw in raw_faces or []:
            confidence = float(raw.get("confidence", 0.0))
            if confidence < self.min_confidence:
                continue
            x, y, box_width, box_height = (float(value) / scale for value in raw["box"])
            x, y = x + offset_x, y + offset_y
            left, top = max(0, int(round(x))), max(0, int(round(y)))
            right, bottom = min(width, int(round(x + box_width))), min(height, int(round(y + box_height)))
            if right - left < 2 or bottom - top < 2:
                continue
            landmarks = {
                name: (int(round(point[0] / scale + offset_x)), int(round(point[1] / scale + offset_y)))
                for name, point in (raw.get("keypoints") or {}).items()
                if name in LANDMARK_NAMES
            }
            faces.append(Face(box=(left, top, right - left, bottom - top), confidence=confidence, landmarks=landmarks))
        faces.sort(key=lambda face: face.confidence, reverse=True)
        return faces


def largest_face(faces: Sequence[Face]) -> Face | None:
    """The face a single-subject training photo is about: the largest confident one."""
    return max(faces, key=lambda face: face.area, default=None)


# --- videos -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frame_count: int

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


def evenly_spaced_indices(frame_count: int, wanted: int) -> list[int]:
    """`wanted` frame numbers spread evenly over the video (each frame at most once)."""
    if frame_count <= 0 or wanted <= 0:
        return []
    if wanted >= frame_count:
        return list(range(frame_count))
    step = frame_count / wanted
    return sorted({min(frame_count - 1, int(step * position + step / 2)) for position in range(wanted)})


def _open_video(path: str | os.PathLike) -> cv2.VideoCapture:
    if not Path(path).is_file():
        raise MediaError("The file is missing.")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise MediaError("The file is not a video that can be read (unknown or unsupported format).")
    return capture


def _count_frames(path: str | os.PathLike) -> int:
    """Frame count by decoding headers only, for containers that do not state it."""
    capture = _open_video(path)
    try:
        count = 0
        while capture.grab():
            count += 1
        return count
    finally:
        capture.release()


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Size, frame rate and frame count of a video; MediaError if it cannot be opened."""
    capture = _open_video(path)
    try:
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        capture.release()
    if frame_count <= 0:
        frame_count = _count_frames(path)
    if not math.isfinite(fps) or fps <= 0 or fps > 1000:
        fps = 25.0
    if frame_count <= 0 or width <= 0 or height <= 0:
        raise MediaError("The video has no decodable frames.")
    return VideoInfo(width=width, height=height, fps=fps, frame_count=frame_count)


def iter_video_frames(path: str | os.PathLike, frame_indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame number, RGB frame) for the wanted frame numbers, decoding sequentially.

    Sequential grab/retrieve is slower than seeking on long videos but exact on every codec and
    container, whereas seeking lands on key frames for some of them.
    """
    wanted = sorted(set(frame_indices))
    if not wanted:
        return
    capture = _open_video(path)
    try:
        position = 0
        next_wanted = 0
        while next_wanted < len(wanted):
            if not capture.grab():
                break
            if position == wanted[next_wanted]:
                ok, frame = capture.retrieve()
                if ok and frame is not None:
                    yield position, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                next_wanted += 1
            position += 1
    finally:
        capture.release()


def prefetched(frames: Iterator[tuple[int, np.ndarray]], *, ahead: int = 4) -> Iterator[tuple[int, np.ndarray]]:
    """The same frames, decoded by a background thread up to `ahead` frames in advance.

    OpenCV releases the GIL while it decodes, so decoding the next sampled frames overlaps with face
    detection on the current one. Errors in the decoder are re-raised here; leaving the loop early stops
    the thread (it waits at most a short timeout on the full queue, then sees the stop flag).
    """
    import queue
    import threading

    buffer: queue.Queue = queue.Queue(maxsize=max(1, ahead))
    stop = threading.Event()
    finished = object()

    def produce() -> None:
        try:
            for item in frames:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            outcome: object = finished
        except BaseException as exc:  # handed to the consumer, which re-raises it
            outcome = exc
        while not stop.is_set():
            try:
                buffer.put(outcome, timeout=0.1)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=produce, name="video-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is finished:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


# --- tracking -----------------------------------------------------------------------------------------------


def box_iou(first: Sequence[float], second: Sequence[float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = first
    bx, by, bw, bh = second
    inter_w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    inter_h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    intersection = inter_w * inter_h
    union = aw * ah + bw * bh - intersection
    return intersection / union if union > 0 else 0.0


def _centre_distance(first: Sequence[float], second: Sequence[float]) -> float:
    """Distance between box centres in units of the larger box side (for fast motion between sampled frames)."""
    ax, ay, aw, ah = first
    bx, by, bw, bh = second
    distance = math.hypot((ax + aw / 2) - (bx + bw / 2), (ay + ah / 2) - (by + bh / 2))
    return distance / max(aw, ah, bw, bh, 1.0)


@dataclass
class Track:
    """One person across the sampled frames: the positions (in the frame list) and faces that belong to them."""

    index: int
    frame_positions: list[int] = field(default_factory=list)
    faces: list[Face] = field(default_factory=list)

    @property
    def last_box(self) -> tuple[int, int, int, int]:
        return self.faces[-1].box

    def representative(self) -> Face:
        """The most confident face of the track (its box is what the user sees)."""
        return max(self.faces, key=lambda face: face.confidence)


def track_faces(
    faces_per_frame: Sequence[Sequence[Face]],
    *,
    min_iou: float = 0.2,
    max_centre_distance: float = 0.6,
    min_track_fraction: float = 0.25,
) -> list[Track]:
    """Link faces across sampled frames into one track per person.

    Greedy assignment, best overlap first: a face joins the track whose last box overlaps it most (IoU at
    least `min_iou`), or failing that whose last centre is close (sampled frames can be far apart). Tracks
    seen in fewer than `min_track_fraction` of the frames that had any face are dropped as spurious
    detections, except that the longest track is always kept. Tracks are re-numbered 0.. by length.
    """
    tracks: list[Track] = []
    for position, faces in enumerate(faces_per_frame):
        candidates = []
        for face_number, face in enumerate(faces):
            for track in tracks:
                if track.frame_positions and track.frame_positions[-1] == position:
                    continue
                overlap = box_iou(face.box, track.last_box)
                distance = _centre_distance(face.box, track.last_box)
                if overlap >= min_iou or distance <= max_centre_distance:
                    candidates.append((overlap, -distance, face_number, track.index))
        candidates.sort(reverse=True)
        used_faces: set[int] = set()
        used_tracks: set[int] = set()
        for _overlap, _distance, face_number, track_index in candidates:
            if face_number in used_faces or track_index in used_tracks:
                continue
            used_faces.add(face_number)
            used_tracks.add(track_index)
            tracks[track_index].frame_positions.append(position)
            tracks[track_index].faces.append(faces[face_number])
        for face_number, face in enumerate(faces):
            if face_number not in used_faces:
                tracks.append(Track(index=len(tracks), frame_positions=[position], faces=[face]))
    if not tracks:
        return []
    frames_with_faces = sum(1 for faces in faces_per_frame if faces)
    minimum = max(1, math.ceil(min_track_fraction * frames_with_faces))
    longest = max(tracks, key=lambda track: len(track.faces))
    kept = [track for track in tracks if len(track.faces) >= minimum or track is longest]
    kept.sort(key=lambda track: (-len(track.faces), track.index))
    for new_index, track in enumerate(kept):
        track.index = new_index
    return kept
