"""Labelled folders (`real/`, `fake/`) turned into cached face crops and arrays for training and evaluation."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ml.errors import MediaError
from ml.faces import CropRule, FaceDetector, crop_square, largest_face, load_image
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
    re-run only processes new or changed files; a different crop rule rebuilds everything.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / INDEX_NAME
    index: dict = {"crop_rule": rule.to_dict(), "items": {}}
    if index_path.is_file():
        previous = json.loads(index_path.read_text())
        if previous.get("crop_rule") == rule.to_dict():
            index = previous
    files = labelled_files(data_dir, IMAGE_SUFFIXES)
    detector = detector or FaceDetector()
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
            entry = {"signature": signature, "label": label}
            try:
                image = load_image(path)
            except MediaError as exc:
                entry.update(status="unreadable", reason=str(exc))
            else:
                face = largest_face(detector.detect(image))
                if face is None:
                    entry.update(status="no_face", width=image.shape[1], height=image.shape[0])
                else:
                    crop = crop_square(image, face.box, rule)
                    crop_path.parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(crop_path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
                    entry.update(
                        status="ok",
                        crop=crop_path.relative_to(out_dir).as_posix(),
                        width=image.shape[1],
                        height=image.shape[0],
                        **face.to_dict(),
                    )
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
