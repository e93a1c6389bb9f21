"""What an upload's bytes are: hashed, scanned for markup and sniffed as they go by once, then decided from
the content (never the client's name or Content-Type) against the table in `scans.media_types`.

`UploadDigester` runs while the request body streams to disk (`scans.upload_handlers`); `inspect_upload`
decides the kind and format or raises `UploadRejected` with the reason a user is shown.
"""

from __future__ import annotations

import hashlib
import math
import re
import tempfile
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import IO, TYPE_CHECKING

import cv2
from django.conf import settings
from django.core.files import File
from PIL import Image, UnidentifiedImageError

from scans.media_types import (
    IMAGES_BY_PILLOW_FORMAT,
    STILL_IMAGE_FTYP_BRANDS,
    SUPPORTED_FORMATS_TEXT,
    MediaType,
    sniff_video,
)
from scans.models import Scan

if TYPE_CHECKING:
    from django.core.files.uploadedfile import UploadedFile

FALLBACK_FILENAME = "upload"

_CHUNK_BYTES = 1024 * 1024
_SNIFF_BYTES = 64
# Markup that makes an upload an HTML document or an image/HTML polyglot that a browser could run. Uploads
# are never served, but such a file is not an honest photo or video either, so it is refused outright. Each
# pattern needs a tag name and the character after it, so compressed media data essentially never matches by
# chance (a bare "<svg" would: four bytes turn up in a few percent of large files). A standalone SVG is text
# and is refused as such.
_MARKUP = re.compile(rb"<(?:script|html|body|iframe)[\s>/]|<!doctype\s+html|<\?php\s", re.IGNORECASE)
# Bytes kept from one chunk to the next so a tag split across two chunks is still seen.
_MARKUP_OVERLAP = 64


class UploadRejected(Exception):
    """An upload that cannot become a scan.

    `message` is shown to the user as is; `status_code` is the HTTP status an API answers with:
    400 (empty, text, markup, undecodable), 413 (too many bytes or pixels), 415 (a binary format
    that is not a supported image or video), 503 (no active model to analyse it with).
    """

    def __init__(self, message: str, *, status_code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


@dataclass(frozen=True)
class UploadDigest:
    """What one pass over an upload's bytes learnt: its size, SHA-256, first bytes, and whether it holds markup."""

    size_bytes: int
    sha256: str
    head: bytes
    has_markup: bool


class UploadDigester:
    """Hashes an upload and looks for markup chunk by chunk, as its bytes go by once (to disk or elsewhere).

    Fed by `scans.upload_handlers.ScanUploadHandler` while Django writes the request body to disk, so the
    request never reads the stored file again for these checks; `local_upload` uses it for uploads that
    arrive otherwise (the dashboard form).
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._size_bytes = 0
        self._head = b""
        self._carry = b""
        self._has_markup = False

    def update(self, chunk: bytes) -> None:
        if len(self._head) < _SNIFF_BYTES:
            self._head += chunk[: _SNIFF_BYTES - len(self._head)]
        if not self._has_markup:
            window = self._carry + chunk
            self._has_markup = _MARKUP.search(window) is not None
            self._carry = window[-_MARKUP_OVERLAP:]
        self._hash.update(chunk)
        self._size_bytes += len(chunk)

    def digest(self) -> UploadDigest:
        return UploadDigest(
            size_bytes=self._size_bytes, sha256=self._hash.hexdigest(), head=self._head, has_markup=self._has_markup
        )


def display_filename(raw_name: str | None) -> str:
    """The client's file name as safe display text: no path parts, control or format characters, bounded."""
    name = (raw_name or "").replace("\\", "/").rsplit("/", 1)[-1]
    # Cc: control characters (NUL included); Cf: invisible format characters such as bidi overrides,
    # which can make "gpj.exe" read as "exe.jpg"; Zl/Zp: line breaks.
    name = "".join(char for char in name if unicodedata.category(char) not in {"Cc", "Cf", "Cs", "Zl", "Zp"})
    name = " ".join(name.split())
    if name in {"", ".", ".."}:
        return FALLBACK_FILENAME
    limit = Scan._meta.get_field("original_filename").max_length
    if len(name) <= limit:
        return name
    suffix = PurePath(name).suffix
    if 1 < len(suffix) <= 16:
        return name[: limit - len(suffix) - 1] + "\N{HORIZONTAL ELLIPSIS}" + suffix
    return name[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


@contextmanager
def local_upload(uploaded_file: UploadedFile) -> Iterator[tuple[Path, UploadDigest, File]]:
    """The upload as a local file, with its digest, and the content to hand to storage.

    An upload that `ScanUploadHandler` received is already on disk with its digest: it is used as it is.
    Any other (in memory, or streamed by Django's own handlers) is copied once to a temporary file while
    its digest is computed.
    """
    digest = getattr(uploaded_file, "upload_digest", None)
    temporary_file_path = getattr(uploaded_file, "temporary_file_path", None)
    if isinstance(digest, UploadDigest) and temporary_file_path is not None:
        yield Path(temporary_file_path()), digest, uploaded_file
        return
    with tempfile.NamedTemporaryFile(prefix="unmask-upload-", dir=settings.FILE_UPLOAD_TEMP_DIR) as spooled:
        digest = _spool(uploaded_file, spooled)
        yield Path(spooled.name), digest, File(spooled)


def _spool(uploaded_file: UploadedFile, spooled: IO[bytes]) -> UploadDigest:
    """Copy the upload to `spooled` while hashing it and looking for markup."""
    digester = UploadDigester()
    uploaded_file.seek(0)
    for chunk in uploaded_file.chunks(_CHUNK_BYTES):
        digester.update(chunk)
        spooled.write(chunk)
    spooled.flush()
    return digester.digest()


def inspect_upload(path: Path, digest: UploadDigest) -> MediaType:
    """What the upload at `path` is, from its content; `UploadRejected` with the reason when it is not accepted.

    Videos are recognised by their container signature, refused over the pixel limit from their headers, and
    must then decode a frame; images must open with Pillow as one of the accepted formats, are refused over
    the pixel limit from their header, and must decode. Each kind has its own size and pixel limits (413), so
    no check decodes more pixels than its kind's limit.
    """
    if digest.size_bytes == 0:
        raise UploadRejected("The file is empty.")
    if digest.has_markup:
        raise UploadRejected(
            f"The file contains HTML or script markup, so it is not accepted. Upload {SUPPORTED_FORMATS_TEXT}."
        )
    head = digest.head
    video_type = sniff_video(head)
    if video_type is not None:
        _check_size(digest.size_bytes, limit=settings.UNMASK_MAX_VIDEO_BYTES, kind_name="video")
        _inspect_video(path, size_bytes=digest.size_bytes)
        return video_type
    if head[4:8] == b"ftyp" and head[8:12] in STILL_IMAGE_FTYP_BRANDS:
        raise UploadRejected(
            f"HEIC and AVIF images are not supported. Upload {SUPPORTED_FORMATS_TEXT}.", status_code=415
        )
    return _inspect_image(path, size_bytes=digest.size_bytes, head=head)


@dataclass(frozen=True)
class VideoHeader:
    """What a video's container and stream headers declare, read by FFmpeg's demuxer before any frame is decoded."""

    width: int
    height: int
    frame_count: int
    fps: float

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


def _inspect_video(path: Path, *, size_bytes: int) -> VideoHeader:
    """Refuse a video whose frames are over the pixel limit (413) or whose declared length cannot be true (400)
    from its headers alone, then prove it decodes.

    Opening the capture runs FFmpeg's demuxer and stream parsers, which read the frame size without decoding
    a frame (measured: a few MB, whatever the size). Only a video within the limit has one frame decoded, so
    the memory this check can take is bounded by the limit (about 7 bytes a pixel: some 60-100 MB at 4K).
    A 15000x15000 Motion-JPEG frame would otherwise have cost 1.5 GB before any limit was looked at.
    """
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise UploadRejected(_UNDECODABLE_VIDEO)
        header = VideoHeader(
            width=_header_int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=_header_int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            frame_count=_header_int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
            fps=_header_float(capture.get(cv2.CAP_PROP_FPS)),
        )
        if header.width <= 0 or header.height <= 0:
            raise UploadRejected(_UNDECODABLE_VIDEO)
        _check_video_pixels(width=header.width, height=header.height)
        _check_declared_length(header, size_bytes=size_bytes)
        decoded, frame = capture.read()
    finally:
        capture.release()
    if not decoded or frame is None or frame.size == 0:
        raise UploadRejected(_UNDECODABLE_VIDEO)
    # A stream whose frames are larger than its headers said is refused as well, so no worker ever decodes it.
    _check_video_pixels(width=frame.shape[1], height=frame.shape[0])
    return header


_UNDECODABLE_VIDEO = "The video could not be decoded: no frame could be read from it."
# Frames a file of N bytes can hold, at most. Every container spends bytes on each frame it stores (a block or
# chunk header, an index entry) and every codec at least a byte on its payload: real videos take hundreds of
# bytes a frame and more, so only a header that lies (a Matroska Duration of 1e9 s) goes over this.
_MAX_FRAMES_PER_BYTE = 1


def _header_int(value: float) -> int:
    """A header value OpenCV reports as a float; 0 (unknown) when it is not a finite number."""
    return int(value) if math.isfinite(value) else 0


def _header_float(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else 0.0


def _check_declared_length(header: VideoHeader, *, size_bytes: int) -> None:
    """Refuse a video whose header declares more frames than its bytes could hold.

    The worker samples frames evenly over the declared length, so with such a header every frame it looks for
    lies past the real end of the stream and the scan could only fail; the user learns why at once instead.
    """
    if header.frame_count <= _MAX_FRAMES_PER_BYTE * size_bytes:
        return
    length = f"{header.frame_count:,} frames"
    if header.fps > 0:
        length += f", {header.duration_s:,.0f} seconds at {header.fps:g} frames a second"
    raise UploadRejected(
        f"The video's header declares {length}, more than a file of {size_bytes:,} bytes can hold: the "
        "header is wrong or the file is damaged. Re-encode or remux it (e.g. with ffmpeg) and upload it again."
    )


def _check_video_pixels(*, width: int, height: int) -> None:
    limit = settings.UNMASK_MAX_VIDEO_PIXELS
    if width * height > limit:
        raise UploadRejected(
            f"The video's frames are {width}\N{MULTIPLICATION SIGN}{height} pixels; at most {limit:,} pixels "
            "a frame are accepted.",
            status_code=413,
        )


def _inspect_image(path: Path, *, size_bytes: int, head: bytes) -> MediaType:
    try:
        with Image.open(path, formats=list(IMAGES_BY_PILLOW_FORMAT)) as image:
            image_format = image.format
            width, height = image.size
            _check_size(size_bytes, limit=settings.UNMASK_MAX_IMAGE_BYTES, kind_name="image")
            if width * height > settings.UNMASK_MAX_IMAGE_PIXELS:
                raise UploadRejected(
                    f"The image is {width}\N{MULTIPLICATION SIGN}{height} pixels; at most "
                    f"{settings.UNMASK_MAX_IMAGE_PIXELS:,} pixels are accepted.",
                    status_code=413,
                )
            if image_format == "JPEG":
                # A reduced-scale decode still reads every entropy-coded block, so truncation shows, at a
                # fraction of the memory a full decode of a large photo needs.
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            image.load()
    except UnidentifiedImageError:
        raise _unrecognised(head) from None
    except Image.DecompressionBombError:
        raise UploadRejected(
            f"The image has too many pixels; at most {settings.UNMASK_MAX_IMAGE_PIXELS:,} are accepted.",
            status_code=413,
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadRejected("The image is damaged or truncated and cannot be decoded.") from exc
    if width == 0 or height == 0:
        raise UploadRejected("The image has no pixels.")
    return IMAGES_BY_PILLOW_FORMAT[image_format]


def _unrecognised(head: bytes) -> UploadRejected:
    if _looks_like_text(head):
        return UploadRejected(f"This is a text document, not {SUPPORTED_FORMATS_TEXT}.")
    return UploadRejected(f"Unsupported file format. Upload {SUPPORTED_FORMATS_TEXT}.", status_code=415)


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The sniffed head may end in the middle of a multi-byte character.
        return exc.start >= len(head) - 3
    return True


def _check_size(size_bytes: int, *, limit: int, kind_name: str) -> None:
    if size_bytes > limit:
        raise UploadRejected(
            f"The {kind_name} is {megabytes(size_bytes)}; {kind_name}s up to {megabytes(limit)} are accepted.",
            status_code=413,
        )


def megabytes(size_bytes: int) -> str:
    return f"{size_bytes / (1024 * 1024):.1f} MB"
