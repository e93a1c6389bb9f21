"""Hostile uploads through the API and the dashboard: each is refused with a clear message and leaves nothing behind
(no row, no stored file, no job), or is accepted only as what its content really is, under a random name.
"""

from __future__ import annotations

import io
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import cv2
import pytest
from django.urls import reverse
from PIL import Image

from scans.models import Scan
from scans.queues import SCAN_QUEUE
from scans.tests.uploads import image_bytes, short_clip, upload

pytestmark = pytest.mark.django_db

LIST_URL = reverse("api:scan-list")
DASHBOARD_URL = reverse("scans:dashboard")
NO_FILE_FIELD = "Send the file to scan as multipart/form-data in a field named `file`."
MULTIPART_HEADER_TOO_LARGE = "Multipart form parse error - Request max total header size exceeded."


def _stored_files(media_root: Path) -> list[Path]:
    return [path for path in media_root.rglob("*") if path.is_file()] if media_root.exists() else []


def _assert_nothing_left(media_root: Path, redis_conn) -> None:
    assert not Scan.objects.exists()
    assert _stored_files(media_root) == []
    assert redis_conn.llen(f"rq:queue:{SCAN_QUEUE}") == 0


def _png_chunk(chunk_type: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + chunk_type + data + struct.pack(">I", zlib.crc32(chunk_type + data))


def _png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header declaring `width` x `height` pixels, with a few bytes of compressed data: tiny on disk."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + _png_chunk(b"IEND", b"")
    )


HLS_PLAYLIST = b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\nhttp://127.0.0.1:9/segment.ts\n#EXT-X-ENDLIST\n"
FFCONCAT = b"ffconcat version 1.0\nfile 'http://127.0.0.1:9/clip.mp4'\nfile '/etc/passwd'\n"
PLAIN_SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>'
SCRIPT_SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
HTML_TAIL = b"<html><body><script>alert(document.cookie)</script></body></html>"


@pytest.mark.parametrize(
    ("content", "name", "expected_words"),
    [
        (b"This is a plain text file, not a video.\n" * 20, "clip.mp4", "text document"),
        (image_bytes("PNG") + HTML_TAIL, "photo.png", "markup"),
        (image_bytes("JPEG") + HTML_TAIL, "photo.jpg", "markup"),
        (PLAIN_SVG, "vector.svg", "text document"),
        (SCRIPT_SVG, "vector.jpg", "markup"),
        (HLS_PLAYLIST, "stream.mp4", "text document"),
        (FFCONCAT, "concat.mp4", "text document"),
        (b"", "empty.jpg", "empty"),
        (b"<?php system($_GET['c']); ?>", "x.php.jpg", "markup"),
    ],
    ids=[
        "text-as-mp4",
        "png-html-polyglot",
        "jpeg-html-polyglot",
        "svg",
        "svg-script",
        "hls",
        "ffconcat",
        "empty",
        "php",
    ],
)
def test_hostile_content_is_refused_with_400_and_leaves_nothing(
    alice, tiny_models, api_client_for, redis_conn, _private_media, content, name, expected_words
):
    response = api_client_for(alice).post(
        LIST_URL, {"file": upload(content, name, content_type="video/mp4")}, format="multipart"
    )

    assert response.status_code == 400, response.content
    assert expected_words in response.json()["detail"]
    _assert_nothing_left(_private_media, redis_conn)


def test_a_real_jpeg_named_x_php_jpg_is_stored_as_a_jpeg_under_a_random_name(
    alice, tiny_models, api_client_for, redis_conn, _private_media
):
    response = api_client_for(alice).post(
        LIST_URL,
        {"file": upload(image_bytes("JPEG"), "x.php.jpg", content_type="application/x-php")},
        format="multipart",
    )

    assert response.status_code == 202, response.content
    scan = Scan.objects.get()
    assert scan.original_filename == "x.php.jpg"
    assert scan.content_type == "image/jpeg"
    stored = Path(scan.file.name)
    assert stored.parent.name == "uploads"
    assert stored.suffix == ".jpg"
    assert "php" not in stored.name
    assert len(stored.stem) == 32 and int(stored.stem, 16) >= 0


def test_a_png_whose_extension_lies_is_stored_with_the_suffix_of_its_content(
    alice, tiny_models, api_client_for, redis_conn
):
    response = api_client_for(alice).post(
        LIST_URL, {"file": upload(image_bytes("PNG"), "shell.php")}, format="multipart"
    )

    assert response.status_code == 202, response.content
    assert Scan.objects.get().file.name.endswith(".png")


@pytest.mark.parametrize(("width", "height"), [(50_000, 50_000), (2_000_000, 30)])
def test_a_decompression_bomb_is_refused_by_its_pixel_count_before_it_is_decoded(
    alice, tiny_models, api_client_for, redis_conn, _private_media, width, height
):
    bomb = _png_bomb(width, height)
    assert len(bomb) < 200

    response = api_client_for(alice).post(LIST_URL, {"file": upload(bomb, "bomb.png")}, format="multipart")

    assert response.status_code == 413
    assert "pixels" in response.json()["detail"]
    _assert_nothing_left(_private_media, redis_conn)


def test_the_pixel_limit_is_configurable(alice, tiny_models, api_client_for, redis_conn, settings):
    settings.UNMASK_MAX_IMAGE_PIXELS = 64 * 48 - 1

    response = api_client_for(alice).post(LIST_URL, {"file": upload(image_bytes("GIF"), "a.gif")}, format="multipart")

    assert response.status_code == 413
    assert f"{64 * 48 - 1:,}" in response.json()["detail"]


def test_a_truncated_video_is_refused_at_upload(
    alice, data_dir, tiny_models, api_client_for, redis_conn, _private_media
):
    content = short_clip(data_dir).read_bytes()

    response = api_client_for(alice).post(
        LIST_URL, {"file": upload(content[: len(content) // 2], "cut.mp4")}, format="multipart"
    )

    assert response.status_code == 400
    assert "could not be decoded" in response.json()["detail"]
    _assert_nothing_left(_private_media, redis_conn)


def test_a_video_damaged_after_upload_ends_failed_with_a_readable_reason(
    alice, data_dir, tiny_models, api_client_for, redis_conn, run_worker
):
    """The worker copes with a file that went bad on disk (or fooled the upload check): failed, never stuck."""
    content = short_clip(data_dir).read_bytes()
    response = api_client_for(alice).post(LIST_URL, {"file": upload(content, "clip.mp4")}, format="multipart")
    assert response.status_code == 202
    scan = Scan.objects.get()
    Path(scan.file.path).write_bytes(content[: len(content) // 3])

    worker = run_worker()

    scan.refresh_from_db()
    assert scan.status == Scan.Status.FAILED
    assert "video" in scan.error_message
    assert "internal error" not in scan.error_message
    assert worker.failed_job_count == 0


# --- Size limits, before the body is read ----------------------------------------------------------------


class _UnreadableBody(io.RawIOBase):
    """A request body that fails the test if anything tries to read it."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the request body was read")

    readline = read


def _oversized_post(client, url: str, settings) -> object:
    declared = settings.UNMASK_MAX_VIDEO_BYTES + 10 * 1024 * 1024
    return client.generic(
        "POST",
        url,
        b"",
        content_type="multipart/form-data; boundary=unmask",
        CONTENT_LENGTH=str(declared),
        **{"wsgi.input": _UnreadableBody()},
    )


def test_an_oversized_api_upload_with_a_session_is_413_without_reading_the_body(
    alice, tiny_models, client, redis_conn, _private_media, settings
):
    """Session authentication checks CSRF, which reads the form: the limit must come first."""
    client.force_login(alice)

    response = _oversized_post(client, LIST_URL, settings)

    assert response.status_code == 413
    assert "files up to" in response.json()["detail"]
    _assert_nothing_left(_private_media, redis_conn)


def test_an_oversized_api_upload_with_a_token_is_413_without_reading_the_body(
    alice, tiny_models, api_client_for, redis_conn, _private_media, settings
):
    response = _oversized_post(api_client_for(alice), LIST_URL, settings)

    assert response.status_code == 413
    _assert_nothing_left(_private_media, redis_conn)


def test_an_oversized_dashboard_upload_is_413_without_reading_the_body(
    alice, tiny_models, client, redis_conn, _private_media, settings
):
    client.force_login(alice)

    response = _oversized_post(client, DASHBOARD_URL, settings)

    assert response.status_code == 413
    assert b"files up to" in response.content
    _assert_nothing_left(_private_media, redis_conn)


@pytest.mark.parametrize("url_name", ["api:batch-list", "scans:batch-new"])
def test_an_oversized_batch_is_413_without_reading_the_body(
    url_name, alice, tiny_models, client, redis_conn, _private_media, settings
):
    client.force_login(alice)
    settings.UNMASK_BATCH_MAX_BYTES = 1024

    response = _oversized_post(client, reverse(url_name), settings)

    assert response.status_code == 413
    _assert_nothing_left(_private_media, redis_conn)


def test_a_video_over_its_own_limit_is_413_and_leaves_nothing(
    alice, data_dir, tiny_models, api_client_for, redis_conn, _private_media, settings
):
    content = short_clip(data_dir).read_bytes()
    settings.UNMASK_MAX_VIDEO_BYTES = len(content) - 1

    response = api_client_for(alice).post(LIST_URL, {"file": upload(content, "clip.mp4")}, format="multipart")

    assert response.status_code == 413
    assert "videos up to" in response.json()["detail"]
    _assert_nothing_left(_private_media, redis_conn)


def test_an_image_just_under_its_limit_is_accepted(alice, tiny_models, api_client_for, redis_conn, settings):
    content = image_bytes("PNG")
    settings.UNMASK_MAX_IMAGE_BYTES = len(content)

    response = api_client_for(alice).post(LIST_URL, {"file": upload(content, "a.png")}, format="multipart")

    assert response.status_code == 202


# --- Client file names -----------------------------------------------------------------------------------


def _multipart_with_raw_disposition(disposition_filename: bytes, content: bytes) -> bytes:
    return (
        b"--unmask\r\n"
        b'Content-Disposition: form-data; name="file"; ' + disposition_filename + b"\r\n"
        b"Content-Type: image/jpeg\r\n\r\n" + content + b"\r\n--unmask--\r\n"
    )


def _post_raw(client, disposition_filename: bytes):
    body = _multipart_with_raw_disposition(disposition_filename, image_bytes("JPEG"))
    return client.generic("POST", LIST_URL, body, content_type="multipart/form-data; boundary=unmask")


@pytest.mark.parametrize(
    "disposition_filename",
    [
        b'filename="../../../etc/passwd.jpg"',
        b'filename="..\\..\\windows\\win.ini.jpg"',
        b'filename="evil\x00.jpg"',
        b'filename="' + b"A" * 800 + b'.jpg"',
        b"filename*=UTF-8''%FF%FE%FA%20not%20utf8.jpg",
        b"filename*=UTF-8''..%2F..%2Fpasswd%00.jpg",
        b'filename="photo\xe2\x80\xaegpj.exe"',
    ],
    ids=["dot-dot-slash", "backslashes", "nul", "long", "non-utf8-encoded", "encoded-traversal", "bidi-override"],
)
def test_a_hostile_client_file_name_is_only_display_text(
    alice, tiny_models, api_client_for, redis_conn, disposition_filename
):
    response = _post_raw(api_client_for(alice), disposition_filename)

    assert response.status_code == 202, response.content
    scan = Scan.objects.get()
    shown = scan.original_filename
    assert "/" not in shown and "\\" not in shown and "\x00" not in shown and "\u202e" not in shown
    assert not shown.startswith("..")
    assert 0 < len(shown) <= 255
    stored = Path(scan.file.name)
    assert stored.parent.name == "uploads"
    assert stored.suffix == ".jpg"
    assert len(stored.stem) == 32
    assert Path(scan.file.path).resolve().is_relative_to(Path(scan.file.storage.location).resolve())


@pytest.mark.parametrize(
    "disposition_filename",
    [b'filename="\xff\xfe\xfa raw latin-1.jpg"', b'filename="' + b"A" * 5000 + b'.jpg"'],
    ids=["raw-non-utf8", "header-over-1k"],
)
def test_a_file_part_whose_header_django_cannot_parse_is_a_400_and_leaves_nothing(
    alice, tiny_models, api_client_for, redis_conn, _private_media, disposition_filename
):
    """Django drops a part whose header is not UTF-8, and refuses a part header over 1 KiB: no file, no scan."""
    response = _post_raw(api_client_for(alice), disposition_filename)

    assert response.status_code == 400
    assert response.json() in ({"detail": NO_FILE_FIELD}, {"detail": MULTIPART_HEADER_TOO_LARGE})
    _assert_nothing_left(_private_media, redis_conn)


# --- Video decoding opens local files only ----------------------------------------------------------------


@pytest.fixture
def http_requests_seen() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server; yields its base URL and the paths requested from it."""
    seen: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_video_decoding_may_only_open_local_files(http_requests_seen, tmp_path):
    """Settings restrict OpenCV's FFmpeg to the `file` protocol, in the web process and the worker alike."""
    base_url, seen = http_requests_seen
    playlist = tmp_path / "playlist.m3u8"
    playlist.write_bytes(HLS_PLAYLIST.replace(b"http://127.0.0.1:9", base_url.encode()))

    for source in (f"{base_url}/direct.mp4", str(playlist)):
        capture = cv2.VideoCapture(source)
        opened = capture.isOpened()
        capture.release()
        assert not opened

    assert seen == []


def test_the_restriction_still_lets_a_stored_video_decode(data_dir):
    capture = cv2.VideoCapture(str(short_clip(data_dir)))
    try:
        decoded, frame = capture.read()
    finally:
        capture.release()

    assert decoded and frame is not None


def test_a_polyglot_image_is_still_a_valid_image_to_pillow_so_only_the_markup_check_catches_it():
    """Guards the premise of the polyglot tests: the appended HTML does not make the image unreadable."""
    with Image.open(io.BytesIO(image_bytes("PNG") + HTML_TAIL)) as image:
        image.load()
        assert image.format == "PNG"
