"""What an upload is, decided from its content through `scan_create`: the accepted formats, what is refused and
why (with which status), the size limits, and the display name kept from the client's file name."""

from __future__ import annotations

import hashlib

import pytest

from scans.models import Scan
from scans.services import scan_create
from scans.tests.uploads import avi_bytes, image_bytes, mkv_bytes, short_clip, upload
from scans.uploads import FALLBACK_FILENAME, UploadRejected, display_filename

pytestmark = pytest.mark.django_db


def _rejection(owner, content: bytes, name: str = "upload.bin") -> UploadRejected:
    with pytest.raises(UploadRejected) as caught:
        scan_create(owner=owner, uploaded_file=upload(content, name))
    return caught.value


# --- What the content is -------------------------------------------------------------------------------


def test_it_decides_the_kind_from_the_content_not_the_name_or_content_type(alice, tiny_models, redis_conn):
    image_version, _video_version = tiny_models
    content = image_bytes("JPEG")

    scan = scan_create(owner=alice, uploaded_file=upload(content, "holiday.mp4", content_type="video/mp4"))

    assert scan.kind == Scan.Kind.IMAGE
    assert scan.content_type == "image/jpeg"
    assert scan.status == Scan.Status.QUEUED
    assert scan.size_bytes == len(content)
    assert scan.sha256 == hashlib.sha256(content).hexdigest()
    assert scan.original_filename == "holiday.mp4"
    assert scan.image_model_version == image_version
    assert scan.video_model_version is None


@pytest.mark.parametrize(
    ("image_format", "content_type"),
    [("PNG", "image/png"), ("WEBP", "image/webp"), ("BMP", "image/bmp"), ("GIF", "image/gif")],
)
def test_it_accepts_each_supported_image_format(alice, tiny_models, redis_conn, image_format, content_type):
    scan = scan_create(owner=alice, uploaded_file=upload(image_bytes(image_format), "picture"))

    assert (scan.kind, scan.content_type) == (Scan.Kind.IMAGE, content_type)


def test_it_stores_the_file_under_a_random_name_with_the_detected_suffix(alice, tiny_models, redis_conn):
    content = image_bytes("PNG")

    scan = scan_create(owner=alice, uploaded_file=upload(content, "../../etc/passwd.jpg"))

    assert scan.file.name.startswith("uploads/")
    assert scan.file.name.endswith(".png")
    assert "passwd" not in scan.file.name
    with scan.file.open("rb") as stored:
        assert stored.read() == content


def test_it_accepts_a_real_mp4_clip_as_a_video_and_records_both_model_versions(
    alice, tiny_models, redis_conn, data_dir
):
    image_version, video_version = tiny_models
    clip = short_clip(data_dir)

    scan = scan_create(owner=alice, uploaded_file=upload(clip.read_bytes(), "clip.jpg", content_type="image/jpeg"))

    assert (scan.kind, scan.content_type) == (Scan.Kind.VIDEO, "video/mp4")
    assert scan.file.name.endswith(".mp4")
    assert scan.image_model_version == image_version
    assert scan.video_model_version == video_version


def test_it_accepts_an_avi_video(alice, tiny_models, redis_conn):
    scan = scan_create(owner=alice, uploaded_file=upload(avi_bytes(), "clip"))

    assert (scan.kind, scan.content_type) == (Scan.Kind.VIDEO, "video/x-msvideo")


def test_it_accepts_a_video_without_an_active_video_model_and_records_none(alice, tiny_models, redis_conn):
    _image_version, video_version = tiny_models
    type(video_version).objects.filter(pk=video_version.pk).update(is_active=False)

    scan = scan_create(owner=alice, uploaded_file=upload(avi_bytes(), "clip.avi"))

    assert scan.kind == Scan.Kind.VIDEO
    assert scan.video_model_version is None


# --- What is refused -----------------------------------------------------------------------------------


def test_it_rejects_an_empty_file(alice, tiny_models):
    rejection = _rejection(alice, b"", "empty.jpg")

    assert rejection.status_code == 400
    assert rejection.message == "The file is empty."
    assert not Scan.objects.exists()


def test_it_rejects_a_text_file(alice, tiny_models):
    rejection = _rejection(alice, b"name,score\nalice,1\n", "faces.jpg")

    assert rejection.status_code == 400
    assert "text document" in rejection.message


@pytest.mark.parametrize(
    "content",
    [
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>',
        b"<!DOCTYPE html><html><body>hello</body></html>",
        b"GIF89a<html><script>alert(document.cookie)</script></html>",
        image_bytes("JPEG") + b"<script>alert(1)</script>",
    ],
    ids=["svg", "html", "gif-header-html-polyglot", "jpeg-with-script-appended"],
)
def test_it_rejects_markup_svg_and_html_polyglots(alice, tiny_models, content):
    rejection = _rejection(alice, content, "picture.gif")

    assert rejection.status_code == 400
    assert not Scan.objects.exists()


def test_it_rejects_markup_split_across_two_upload_chunks(alice, tiny_models):
    padding = image_bytes("PNG")
    content = padding + b"\0" * (1024 * 1024 - len(padding) - 4) + b"<scr" + b"ipt>"

    assert _rejection(alice, content).status_code == 400


def test_tag_like_bytes_without_a_tag_shape_do_not_reject_a_valid_image(alice, tiny_models, redis_conn):
    # Compressed data can hold "<svg" or "<html" by chance; only a whole tag opening counts as markup.
    content = image_bytes("JPEG") + b"\x00<svg\x01<html\x02<body\x03"

    scan = scan_create(owner=alice, uploaded_file=upload(content, "photo.jpg"))

    assert scan.kind == Scan.Kind.IMAGE


def test_it_rejects_a_truncated_jpeg(alice, tiny_models):
    content = image_bytes("JPEG", size=(256, 256))

    rejection = _rejection(alice, content[: len(content) // 2], "cut.jpg")

    assert rejection.status_code == 400
    assert "damaged or truncated" in rejection.message


def test_it_rejects_a_video_container_with_no_decodable_frame(alice, tiny_models):
    content = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(range(256)) * 8

    rejection = _rejection(alice, content, "broken.mp4")

    assert rejection.status_code == 400
    assert "could not be decoded" in rejection.message


def test_it_accepts_an_mkv_video_whose_header_declares_its_true_length(alice, tiny_models, redis_conn):
    scan = scan_create(owner=alice, uploaded_file=upload(mkv_bytes(frames=6, fps=10), "clip.mkv"))

    assert (scan.kind, scan.content_type) == (Scan.Kind.VIDEO, "video/x-matroska")


def test_it_rejects_a_video_whose_header_declares_more_frames_than_the_file_can_hold(alice, tiny_models):
    content = mkv_bytes(frames=6, fps=10, duration_s=1e9)

    rejection = _rejection(alice, content, "endless.mkv")

    assert rejection.status_code == 400
    assert rejection.message == (
        "The video's header declares 10,000,000,000 frames, 1,000,000,000 seconds at 10 frames a second, more than "
        f"a file of {len(content):,} bytes can hold: the header is wrong or the file is damaged. Re-encode or remux "
        "it (e.g. with ffmpeg) and upload it again."
    )
    assert not Scan.objects.exists()


@pytest.mark.parametrize(
    "content",
    [b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, b"%PDF-1.7\n\xe2\xe3\xcf\xd3" + b"\x00" * 64],
    ids=["heic", "pdf"],
)
def test_it_answers_415_for_a_binary_format_it_does_not_support(alice, tiny_models, content):
    rejection = _rejection(alice, content)

    assert rejection.status_code == 415
    assert "JPEG" in rejection.message


def test_it_rejects_an_image_over_the_byte_limit_with_413(alice, tiny_models, settings):
    content = image_bytes("BMP", size=(64, 64))
    settings.UNMASK_MAX_IMAGE_BYTES = len(content) - 1

    rejection = _rejection(alice, content)

    assert rejection.status_code == 413


def test_it_rejects_an_image_over_the_pixel_limit_with_413(alice, tiny_models, settings):
    settings.UNMASK_MAX_IMAGE_PIXELS = 63 * 64

    rejection = _rejection(alice, image_bytes("PNG", size=(64, 64)))

    assert rejection.status_code == 413
    assert "64×64" in rejection.message


def test_it_rejects_a_video_over_the_byte_limit_with_413(alice, tiny_models, settings):
    content = avi_bytes()
    settings.UNMASK_MAX_VIDEO_BYTES = len(content) - 1

    assert _rejection(alice, content).status_code == 413


def test_it_refuses_uploads_while_no_image_model_is_active(alice):
    rejection = _rejection(alice, image_bytes("PNG"))

    assert rejection.status_code == 503
    assert "register_shipped_models" in rejection.message


def test_a_rejected_upload_leaves_no_file_behind(alice, tiny_models, _private_media):
    _rejection(alice, b"just some text")

    assert not any(path.is_file() for path in _private_media.rglob("*"))


# --- Display name --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_name", "shown"),
    [
        ("C:\\Users\\alice\\Pictures\\me.jpg", "me.jpg"),
        ("../../etc/passwd", "passwd"),
        ("bad\x00name\x07.png", "badname.png"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),
        ("  spaced \n out .gif ", "spaced out .gif"),
        ("..", FALLBACK_FILENAME),
        ("", FALLBACK_FILENAME),
        (None, FALLBACK_FILENAME),
    ],
)
def test_display_filename_keeps_only_safe_display_text(raw_name, shown):
    assert display_filename(raw_name) == shown


def test_display_filename_truncates_long_names_but_keeps_the_extension():
    shown = display_filename("x" * 400 + ".jpeg")

    assert len(shown) == Scan._meta.get_field("original_filename").max_length
    assert shown.endswith("\N{HORIZONTAL ELLIPSIS}.jpeg")
