"""Uploads and scan rows for the backend tests: files made on the spot, and picks from the shared real media."""

from __future__ import annotations

import io
import struct
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


# The standard luminance Huffman tables of the JPEG specification (ITU T.81, K.3): bit counts per code length,
# then the symbols.
_DC_LUMINANCE = bytes([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]) + bytes(range(12))
_AC_LUMINANCE = bytes([0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D]) + bytes.fromhex(
    "01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a343536"
    "3738393a434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a9293949596979899"
    "9aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5"
    "f6f7f8f9fa"
)


def flat_gray_jpeg(width: int, height: int) -> bytes:
    """A valid baseline grayscale JPEG of any size, made without ever holding its pixels (a few MB at 15000x15000).

    Every 8x8 block is flat mid-grey: coded as "DC unchanged" (`00`) then "end of block" (`1010`), six bits a
    block, so four blocks are the same three bytes and the entropy-coded data is that pattern repeated. A real
    decoder decodes it to a full-size image, as it would a photo.
    """
    segments = bytearray(b"\xff\xd8")
    segments += b"\xff\xdb" + struct.pack(">HB", 67, 0) + bytes([1] * 64)
    segments += b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + bytes([1, 0x11, 0])
    for table_class_and_id, table in ((0x00, _DC_LUMINANCE), (0x10, _AC_LUMINANCE)):
        segments += b"\xff\xc4" + struct.pack(">HB", 3 + len(table), table_class_and_id) + table
    segments += b"\xff\xda" + struct.pack(">HB", 8, 1) + bytes([1, 0x00, 0, 63, 0])
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    groups_of_four, remaining = divmod(blocks, 4)
    segments += b"\x28\xa2\x8a" * groups_of_four
    if remaining:
        bits = "001010" * remaining
        bits += "1" * (-len(bits) % 8)
        segments += int(bits, 2).to_bytes(len(bits) // 8, "big")
    return bytes(segments + b"\xff\xd9")


def mjpeg_avi(frames: list[bytes], *, width: int, height: int, fps: int = 10) -> bytes:
    """A Motion-JPEG AVI around the given JPEG frames, its headers declaring `width` x `height` (which may lie)."""

    def chunk(fourcc: bytes, payload: bytes) -> bytes:
        return fourcc + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) % 2 else b"")

    def riff_list(kind: bytes, payload: bytes) -> bytes:
        return chunk(b"LIST", kind + payload)

    largest = max(len(frame) for frame in frames)
    main_header = struct.pack(
        "<10I4I", 1_000_000 // fps, 0, 0, 0x10, len(frames), 0, 1, largest, width, height, 0, 0, 0, 0
    )
    stream_header = b"vidsMJPG" + struct.pack(
        "<IHHIIIIIIIihhhh", 0, 0, 0, 0, 1, fps, 0, len(frames), largest, 0xFFFFFFFF, 0, 0, 0, width, height
    )
    stream_format = struct.pack("<IiiHH4sIiiII", 40, width, height, 1, 24, b"MJPG", width * height * 3, 0, 0, 0, 0)
    headers = riff_list(
        b"hdrl",
        chunk(b"avih", main_header) + riff_list(b"strl", chunk(b"strh", stream_header) + chunk(b"strf", stream_format)),
    )
    movie, index, offset = b"", b"", 4
    for frame in frames:
        index += b"00dc" + struct.pack("<III", 0x10, offset, len(frame))
        frame_chunk = chunk(b"00dc", frame)
        movie += frame_chunk
        offset += len(frame_chunk)
    body = b"AVI " + headers + riff_list(b"movi", movie) + chunk(b"idx1", index)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def mkv_bytes(
    *, frames: int = 6, size: tuple[int, int] = (64, 48), fps: int = 10, duration_s: float | None = None
) -> bytes:
    """A Matroska file of Motion-JPEG frames whose Segment Info declares `duration_s` (by default the true one).

    Written element by element (EBML, every size coded on 8 bytes), so the Duration can say anything while
    the stream holds exactly `frames` frames.
    """

    def element(element_id: int, payload: bytes) -> bytes:
        return (
            element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
            + b"\x01"
            + len(payload).to_bytes(7, "big")
            + payload
        )

    def unsigned(element_id: int, value: int) -> bytes:
        return element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))

    def text(element_id: int, value: str) -> bytes:
        return element(element_id, value.encode())

    width, height = size
    declared_s = frames / fps if duration_s is None else duration_s
    ebml_header = element(
        0x1A45DFA3,
        unsigned(0x4286, 1) + unsigned(0x42F7, 1) + unsigned(0x42F2, 4) + unsigned(0x42F3, 8)
        + text(0x4282, "matroska") + unsigned(0x4287, 4) + unsigned(0x4285, 2),
    )  # fmt: skip
    # TimecodeScale 1 ms, so Duration (a float) counts milliseconds.
    info = element(
        0x1549A966,
        unsigned(0x2AD7B1, 1_000_000) + element(0x4489, struct.pack(">d", declared_s * 1000))
        + text(0x4D80, "unmask-tests") + text(0x5741, "unmask-tests"),
    )  # fmt: skip
    video = element(0xE0, unsigned(0xB0, width) + unsigned(0xBA, height))
    track = element(
        0xAE,
        unsigned(0xD7, 1) + unsigned(0x73C5, 1) + unsigned(0x83, 1) + text(0x86, "V_MJPEG")
        + unsigned(0x23E383, 1_000_000_000 // fps) + video,
    )  # fmt: skip
    blocks = b""
    for index in range(frames):
        pixels = np.full((height, width, 3), 40 * index % 255, dtype=np.uint8)
        jpeg = cv2.imencode(".jpg", pixels)[1].tobytes()
        # SimpleBlock: track 1, time relative to the cluster in ms, key frame.
        blocks += element(0xA3, b"\x81" + struct.pack(">h", index * 1000 // fps) + b"\x80" + jpeg)
    cluster = element(0x1F43B675, unsigned(0xE7, 0) + blocks)
    return ebml_header + element(0x18538067, info + element(0x1654AE6B, track) + cluster)


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
