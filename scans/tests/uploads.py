"""Uploads and scan rows for the backend tests: files made on the spot, and picks from the shared real media."""

from __future__ import annotations

import io
import tempfile
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from scans.models import Scan


def image_bytes(image_format: str = "JPEG", size: tuple[int, int] = (64, 48)) -> bytes:
    """A small plain image in `image_format` (no face in it)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (180, 140, 120)).save(buffer, format=image_format)
    return buffer.getvalue()


def gradient_png() -> bytes:
    """A 320x240 smooth gradient: a valid photo-sized image in which no detector finds a face."""
    horizontal = np.linspace(0, 255, 320, dtype=np.uint8)[None, :].repeat(240, axis=0)
    vertical = np.linspace(255, 0, 240, dtype=np.uint8)[:, None].repeat(320, axis=1)
    pixels = np.stack([horizontal, vertical, np.full_like(horizontal, 128)], axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def avi_bytes(frames: int = 6, size: tuple[int, int] = (64, 48)) -> bytes:
    """A tiny Motion-JPEG AVI written by OpenCV (decodable, no face)."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "clip.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
        for index in range(frames):
            writer.write(np.full((size[1], size[0], 3), 40 * index % 255, dtype=np.uint8))
        writer.release()
        return path.read_bytes()


def upload(
    content: bytes, name: str = "upload.bin", content_type: str = "application/octet-stream"
) -> SimpleUploadedFile:
    """An in-memory upload; name and Content-Type are the client's claims, which the services ignore."""
    return SimpleUploadedFile(name, content, content_type=content_type)


def face_photo(data_dir: Path) -> Path:
    """A real photo with one clear, centred face (a StyleGAN face from the shared validation split)."""
    return sorted((data_dir / "images" / "stylegan-celeba" / "val" / "fake").glob("*.jp*g"))[0]


def short_clip(data_dir: Path) -> Path:
    """A real one-second, 24-frame face clip (Celeb-DF)."""
    return sorted((data_dir / "videos" / "celebdf" / "real").glob("*.mp4"))[0]


def make_scan_row(owner, *, kind: str = Scan.Kind.IMAGE, age: timedelta = timedelta(0), **fields: object) -> Scan:
    """A scan row without a stored file, for tests of states and queries (not of uploads)."""
    defaults: dict[str, object] = {
        "original_filename": "face.jpg",
        "size_bytes": 1234,
        "sha256": "ab" * 32,
        "content_type": "image/jpeg" if kind == Scan.Kind.IMAGE else "video/mp4",
        "file": "uploads/missing.jpg",
    }
    defaults.update(fields)
    scan = Scan.objects.create(owner=owner, kind=kind, **defaults)
    if age:
        # created_at is auto_now_add: backdate it afterwards.
        Scan.objects.filter(pk=scan.pk).update(created_at=timezone.now() - age)
        scan.refresh_from_db()
    return scan
