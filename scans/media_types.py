"""The media an upload may be, listed once.

`SUPPORTED` is the one table; everything else is read from it: the upload forms' `accept` hint, the formats
Pillow may open an image as, the video containers the sniffer recognises, the content types a stored file is
served back with, and the "Upload a JPEG, PNG, ... video" wording of every refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGE = "image"
VIDEO = "video"


@dataclass(frozen=True)
class MediaType:
    """One accepted format: what people call it, its content type, the suffix it is stored under, the file
    extensions a picker should offer, and for images the name Pillow gives the format."""

    kind: str
    name: str
    content_type: str
    suffix: str
    extensions: tuple[str, ...]
    pillow_format: str | None = None


SUPPORTED = (
    MediaType(IMAGE, "JPEG", "image/jpeg", ".jpg", (".jpg", ".jpeg"), pillow_format="JPEG"),
    MediaType(IMAGE, "PNG", "image/png", ".png", (".png",), pillow_format="PNG"),
    MediaType(IMAGE, "WebP", "image/webp", ".webp", (".webp",), pillow_format="WEBP"),
    MediaType(IMAGE, "BMP", "image/bmp", ".bmp", (".bmp",), pillow_format="BMP"),
    MediaType(IMAGE, "GIF", "image/gif", ".gif", (".gif",), pillow_format="GIF"),
    MediaType(VIDEO, "MP4", "video/mp4", ".mp4", (".mp4",)),
    MediaType(VIDEO, "MOV", "video/quicktime", ".mov", (".mov",)),
    MediaType(VIDEO, "WebM", "video/webm", ".webm", (".webm",)),
    MediaType(VIDEO, "MKV", "video/x-matroska", ".mkv", (".mkv",)),
    MediaType(VIDEO, "AVI", "video/x-msvideo", ".avi", (".avi",)),
)
BY_CONTENT_TYPE = {media_type.content_type: media_type for media_type in SUPPORTED}
IMAGES_BY_PILLOW_FORMAT = {media_type.pillow_format: media_type for media_type in SUPPORTED if media_type.pillow_format}

# A hint for the browser's file picker only: what is accepted is decided from the content (scans.uploads).
UPLOAD_ACCEPT = ",".join(
    [media_type.content_type for media_type in SUPPORTED]
    + [extension for media_type in SUPPORTED for extension in media_type.extensions]
)
# Only these are ever served with their own Content-Type; anything else goes out as an opaque download, so a
# stored file can never be interpreted as HTML or script by a browser.
STREAMABLE_CONTENT_TYPES = frozenset(BY_CONTENT_TYPE)

# ISO base media files whose brand says "still image" (HEIF/AVIF) share the MP4 container magic.
STILL_IMAGE_FTYP_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}
)
# Old QuickTime files may open with one of these atoms instead of `ftyp`.
_QUICKTIME_LEADING_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
# Initialisms whose first letter is spoken with a vowel sound ("an MP4", "an AVI"; but "a JPEG").
_VOWEL_SOUND_LETTERS = frozenset("AEFHILMNORSX")


def sniff_video(head: bytes) -> MediaType | None:
    """The supported video container a file's first bytes name, or None when they name none."""
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in STILL_IMAGE_FTYP_BRANDS:
            return None
        return BY_CONTENT_TYPE["video/quicktime" if brand == b"qt  " else "video/mp4"]
    if len(head) >= 8 and head[4:8] in _QUICKTIME_LEADING_ATOMS:
        return BY_CONTENT_TYPE["video/quicktime"]
    if head[:4] == b"\x1a\x45\xdf\xa3":
        # EBML header: the DocType element says WebM or Matroska.
        return BY_CONTENT_TYPE["video/webm" if b"webm" in head else "video/x-matroska"]
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return BY_CONTENT_TYPE["video/x-msvideo"]
    return None


def _listed(kind: str) -> str:
    names = [media_type.name for media_type in SUPPORTED if media_type.kind == kind]
    article = "an" if names[0][0] in _VOWEL_SOUND_LETTERS else "a"
    return f"{article} {', '.join(names[:-1])} or {names[-1]} {kind}"


SUPPORTED_FORMATS_TEXT = f"{_listed(IMAGE)}, or {_listed(VIDEO)}"
