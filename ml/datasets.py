"""Labelled folders (`real/`, `fake/`) turned into cached face crops and arrays for training and evaluation."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ml.errors import MediaError
from ml.faces import (
    CropRule,
    FaceDetector,
    crop_square,
    evenly_spaced_indices,
    iter_video_frames,
    largest_face,
    load_image,
    probe_video,
    track_faces,
)
from ml.self_blend import crop_landmarks

LABELS = {"real": 0, "fake": 1}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".mkv", ".avi"}
INDEX_NAME = "index.json"


def labelled_files(data_dir: str | os.PathLike, suffixes: Iterable[str]) -> list[tuple[Path, int]]:
    """Every file with one of `suffixes` under `data_dir/real` and `data_dir/fake`, with its label (fake = 1)."""
    data_dir = Path(data_dir)
    wanted = {suffix.lower() for suffix in suffixes}
    found = []
    for label_name, label in LABELS.items():
        folder = data_dir / label_name
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in wanted:
                found.append((path, label))
    if not found:
        raise FileNotFoundError(f"{data_dir} has no real/ or fake/ folder with media in it")
    return found


@dataclass
class PrepareReport:
    total: int
    cropped: int
    reused: int
    no_face: int
    unreadable: int
    seconds: float


def prepare_face_crops(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    rule: CropRule,
    detector: FaceDetector | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> PrepareReport:
    """MTCNN crops of every image under `data_dir/{real,fake}` written as PNG under `out_dir`, cached.

    The largest confident face of each image is cropped with `rule`. `out_dir/index.json` records, per source
    file, its size and modification time, the box, landmarks and confidence (or that no face was found), so a
    re-run only processes new or changed files. A different crop rule re-cuts every crop from the recorded
    boxes without running MTCNN again (detection does not depend on the rule).
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / INDEX_NAME
    index: dict = {"crop_rule": rule.to_dict(), "items": {}}
    detections: dict = {}  # entries of an index made with another crop rule: boxes reusable, crops not
    if index_path.is_file():
        previous = json.loads(index_path.read_text())
        if previous.get("crop_rule") == rule.to_dict():
            index = previous
        else:
            detections = previous.get("items", {})
    files = labelled_files(data_dir, IMAGE_SUFFIXES)
    started = time.monotonic()
    report = PrepareReport(total=len(files), cropped=0, reused=0, no_face=0, unreadable=0, seconds=0.0)
    for number, (path, label) in enumerate(files, start=1):
        relative = path.relative_to(data_dir).as_posix()
        stat = path.stat()
        signature = [stat.st_size, int(stat.st_mtime)]
        entry = index["items"].get(relative)
        crop_path = out_dir / (relative.rsplit(".", 1)[0] + ".png")
        if entry and entry.get("signature") == signature and (entry["status"] != "ok" or crop_path.is_file()):
            report.reused += 1
            status = entry["status"]
        else:
            detected = detections.get(relative)
            if detected and detected.get("signature") == signature:
                entry = _recut(path, detected, crop_path, out_dir, rule)
            else:
                detector = detector or FaceDetector()
                entry = _detect_and_cut(path, label, signature, crop_path, out_dir, rule, detector)
            if entry["status"] == "ok":
                report.cropped += 1
            index["items"][relative] = entry
            status = entry["status"]
        if status == "no_face":
            report.no_face += 1
        elif status == "unreadable":
            report.unreadable += 1
        if progress is not None:
            progress(number, len(files), relative)
        if number % 200 == 0:
            index_path.write_text(json.dumps(index))
    index_path.write_text(json.dumps(index))
    report.seconds = time.monotonic() - started
    return report


def _detect_and_cut(
    path: Path, label: int, signature: list, crop_path: Path, out_dir: Path, rule: CropRule, detector: FaceDetector
) -> dict:
    """The index entry of one image: its largest face found by MTCNN, cut and written to `crop_path`."""
    entry: dict = {"signature": signature, "label": label}
    try:
        image = load_image(path)
    except MediaError as exc:
        entry.update(status="unreadable", reason=str(exc))
        return entry
    face = largest_face(detector.detect(image))
    if face is None:
        entry.update(status="no_face", width=image.shape[1], height=image.shape[0])
        return entry
    _write_crop(crop_square(image, face.box, rule), crop_path)
    entry.update(
        status="ok",
        crop=crop_path.relative_to(out_dir).as_posix(),
        width=image.shape[1],
        height=image.shape[0],
        **face.to_dict(),
    )
    return entry


def _recut(path: Path, detected: dict, crop_path: Path, out_dir: Path, rule: CropRule) -> dict:
    """An entry from another crop rule's index, its crop cut again from the recorded box with `rule`."""
    entry = dict(detected)
    if entry["status"] == "ok":
        _write_crop(crop_square(load_image(path), entry["box"], rule), crop_path)
        entry["crop"] = crop_path.relative_to(out_dir).as_posix()
    return entry


def _write_crop(crop: np.ndarray, crop_path: Path) -> None:
    crop_path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(crop_path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))


@dataclass
class FaceCropSet:
    """Cached crops in memory: uint8 images (N x S x S x 3), labels (fake = 1), source paths, and MTCNN's five
    landmarks in crop pixels (N x 5 x 2; NaN where the cache has none)."""

    images: np.ndarray
    labels: np.ndarray
    sources: list[str]
    missing: list[tuple[str, str]]  # source path, status ("no_face" / "unreadable")
    landmarks: np.ndarray

    def subset(self, keep: np.ndarray) -> FaceCropSet:
        """The crops where boolean `keep` is true."""
        return FaceCropSet(
            images=self.images[keep],
            labels=self.labels[keep],
            sources=[source for source, kept in zip(self.sources, keep, strict=True) if kept],
            missing=self.missing,
            landmarks=self.landmarks[keep],
        )


def load_face_crops(out_dir: str | os.PathLike, *, limit_per_class: int | None = None) -> FaceCropSet:
    """Read the crops `prepare_face_crops` wrote into arrays (in index order, optionally capped per class)."""
    out_dir = Path(out_dir)
    index = json.loads((out_dir / INDEX_NAME).read_text())
    rule = CropRule.from_dict(index.get("crop_rule"))
    images, labels, sources, missing, landmarks = [], [], [], [], []
    per_class = {0: 0, 1: 0}
    for relative, entry in sorted(index["items"].items()):
        if entry["status"] != "ok":
            missing.append((relative, entry["status"]))
            continue
        if limit_per_class is not None and per_class[entry["label"]] >= limit_per_class:
            continue
        crop = cv2.imread(str(out_dir / entry["crop"]), cv2.IMREAD_COLOR)
        if crop is None:
            missing.append((relative, "unreadable"))
            continue
        images.append(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
        points = crop_landmarks(
            entry.get("landmarks", {}),
            box=entry["box"],
            image_width=entry["width"],
            image_height=entry["height"],
            margin=rule.margin,
            size=rule.size,
        )
        landmarks.append(np.full((5, 2), np.nan, dtype=np.float32) if points is None else points)
        labels.append(entry["label"])
        sources.append(relative)
        per_class[entry["label"]] += 1
    if not images:
        raise FileNotFoundError(f"{out_dir} holds no face crops; run prepare_faces first")
    return FaceCropSet(
        images=np.stack(images),
        labels=np.asarray(labels, dtype=np.int32),
        sources=sources,
        missing=missing,
        landmarks=np.stack(landmarks),
    )


def crop_rule_of(out_dir: str | os.PathLike) -> CropRule:
    """The crop rule a cache was built with."""
    index = json.loads((Path(out_dir) / INDEX_NAME).read_text())
    return CropRule.from_dict(index.get("crop_rule"))


# --- videos: the main person's face track of every training video ---------------------------------------------


@dataclass
class VideoFaces:
    """The main person's face crops of one labelled video, in time order, with MTCNN's landmarks in crop
    pixels (for self-blending its real frames) and the group it is held out with (`ml.sources`)."""

    name: str
    label: int
    group: str
    frame_indices: np.ndarray
    crops: np.ndarray
    landmarks: np.ndarray
    source: str = ""
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    logits: np.ndarray = field(default_factory=lambda: np.zeros(0))


# Bumped when the cached arrays change, so older caches are rebuilt rather than misread.
VIDEO_CACHE_FORMAT = 2
DEFAULT_VIDEO_FRAMES = 160


def extract_video_faces(
    path: Path, *, detector: FaceDetector, rule: CropRule, max_frames: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame numbers, crops and crop-pixel landmarks of the longest face track over `max_frames` evenly
    spaced frames, found with the scan pipeline's detector, crop rule and tracker."""
    info = probe_video(path)
    wanted = evenly_spaced_indices(info.frame_count, max_frames)
    frame_numbers, faces_per_frame, frames = [], [], {}
    for frame_number, frame in iter_video_frames(path, wanted):
        faces = detector.detect(frame)
        frames[len(frame_numbers)] = frame
        frame_numbers.append(frame_number)
        faces_per_frame.append(faces)
    tracks = track_faces(faces_per_frame)
    if not tracks:
        return (
            np.zeros(0, dtype=np.int32),
            np.zeros((0, rule.size, rule.size, 3), dtype=np.uint8),
            np.zeros((0, 5, 2), dtype=np.float32),
        )
    main = tracks[0]
    crops, landmarks = [], []
    for position, face in zip(main.frame_positions, main.faces, strict=True):
        frame = frames[position]
        crops.append(crop_square(frame, face.box, rule))
        points = crop_landmarks(
            {name: list(point) for name, point in face.landmarks.items()},
            box=list(face.box),
            image_width=frame.shape[1],
            image_height=frame.shape[0],
            margin=rule.margin,
            size=rule.size,
        )
        landmarks.append(np.full((5, 2), np.nan, dtype=np.float32) if points is None else points)
    indices = [frame_numbers[position] for position in main.frame_positions]
    return np.asarray(indices, dtype=np.int32), np.stack(crops), np.stack(landmarks).astype(np.float32)


def cache_video_faces(
    data_dirs: list[Path],
    cache_dir: Path,
    *,
    rule: CropRule,
    max_frames: int | None = 160,
    progress: Callable[[str], None] | None = None,
) -> list[VideoFaces]:
    """Main-track crops of every video under each `data_dir/{real,fake}`, cached as one .npz per video.

    Videos are grouped over all `data_dirs` together (`ml.sources.video_groups`): a Celeb-DF clip and the full
    video it was cut from, or a real and the swaps made from it, share a group. `max_frames=None` takes a
    cached track whatever frame count it was made with (training reads what `prepare_training_data` cached)
    and extracts `DEFAULT_VIDEO_FRAMES` where there is none.
    """
    from ml.sources import video_groups

    cache_dir.mkdir(parents=True, exist_ok=True)
    detector: FaceDetector | None = None
    labelled = [
        (data_dir, path, label) for data_dir in data_dirs for path, label in labelled_files(data_dir, VIDEO_SUFFIXES)
    ]
    groups = video_groups([path.stem for _data_dir, path, _label in labelled])
    videos = []
    for data_dir, path, label in labelled:
        stat = path.stat()
        key = f"{path.parent.parent.name}-{path.parent.name}-{path.stem}"
        cache_path = cache_dir / f"{key}.npz"
        frames = max_frames or DEFAULT_VIDEO_FRAMES
        wanted = [VIDEO_CACHE_FORMAT, stat.st_size, int(stat.st_mtime), rule.to_dict(), frames]
        cached = None
        if cache_path.is_file():
            cached = np.load(cache_path, allow_pickle=False)
            signature = json.loads(str(cached["signature"]))
            if signature[:4] != wanted[:4] or (max_frames is not None and signature[4] != max_frames):
                cached = None
        if cached is None:
            started = time.monotonic()
            detector = detector or FaceDetector()
            indices, crops, landmarks = extract_video_faces(path, detector=detector, rule=rule, max_frames=frames)
            signature_text = json.dumps(wanted)
            np.savez_compressed(
                cache_path, signature=np.asarray(signature_text), indices=indices, crops=crops, landmarks=landmarks
            )
            if progress:
                progress(f"faces of {path.name}: {len(indices)} frames tracked ({time.monotonic() - started:.0f} s)")
        else:
            indices, crops, landmarks = cached["indices"], cached["crops"], cached["landmarks"]
        videos.append(
            VideoFaces(
                name=path.name,
                label=label,
                group=groups[path.stem],
                frame_indices=indices,
                crops=crops,
                landmarks=landmarks,
                source=Path(data_dir).name,
            )
        )
    return videos
