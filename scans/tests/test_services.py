"""scan_create (content checks, storage, model versions, enqueueing), scan_delete and the conditional transitions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from rq.job import Job

from scans.models import Scan
from scans.services import (
    FALLBACK_FILENAME,
    SCAN_QUEUE,
    UploadRejected,
    display_filename,
    scan_create,
    scan_delete,
    scan_mark_done,
    scan_mark_failed,
    scan_mark_processing,
    scan_update_progress,
)
from scans.tests.uploads import avi_bytes, image_bytes, make_scan_row, short_clip, upload

pytestmark = pytest.mark.django_db

DONE_RESULT = {
    "verdict": "fake",
    "fake_probability": 0.91,
    "faces": [{"index": 0, "box": [1, 2, 3, 4], "fake_probability": 0.91, "verdict": "fake"}],
    "timings": {"total_s": 0.4},
}


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


# --- Enqueueing ----------------------------------------------------------------------------------------


def test_it_enqueues_one_job_only_once_the_transaction_commits(
    alice, tiny_models, redis_conn, django_capture_on_commit_callbacks, settings
):
    settings.UNMASK_IMAGE_JOB_TIMEOUT = 77
    queue_key = f"rq:queue:{SCAN_QUEUE}"

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        scan = scan_create(owner=alice, uploaded_file=upload(image_bytes("PNG"), "a.png"))
        assert redis_conn.llen(queue_key) == 0

    assert len(callbacks) == 1
    assert redis_conn.llen(queue_key) == 1
    job = Job.fetch(scan.job_id, connection=redis_conn)
    assert job.func_name == "scans.jobs.analyze_scan"
    assert job.args == (str(scan.id),)
    assert job.timeout == 77


def test_a_video_job_gets_the_video_timeout(
    alice, tiny_models, redis_conn, django_capture_on_commit_callbacks, settings
):
    settings.UNMASK_VIDEO_JOB_TIMEOUT = 123

    with django_capture_on_commit_callbacks(execute=True):
        scan = scan_create(owner=alice, uploaded_file=upload(avi_bytes(), "clip.avi"))

    assert Job.fetch(scan.job_id, connection=redis_conn).timeout == 123


def test_it_fails_the_scan_at_once_when_the_queue_is_unreachable(
    alice, tiny_models, django_capture_on_commit_callbacks, settings
):
    # A real connection attempt to a port nothing listens on.
    settings.RQ_QUEUES = {SCAN_QUEUE: {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60}}

    with django_capture_on_commit_callbacks(execute=True):
        scan = scan_create(owner=alice, uploaded_file=upload(image_bytes("PNG"), "a.png"))

    scan.refresh_from_db()
    assert scan.status == Scan.Status.FAILED
    assert "queue is unavailable" in scan.error_message


# --- Delete --------------------------------------------------------------------------------------------


def test_scan_delete_removes_the_row_and_then_the_file_on_commit(
    alice, tiny_models, redis_conn, django_capture_on_commit_callbacks
):
    scan = scan_create(owner=alice, uploaded_file=upload(image_bytes("PNG"), "a.png"))
    stored_path = Path(scan.file.path)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        scan_delete(scan=scan)
    assert not Scan.objects.filter(pk=scan.pk).exists()
    # The file outlives the row until the deletion commits.
    assert stored_path.is_file()

    for callback in callbacks:
        callback()
    assert not stored_path.exists()


# --- Transitions ---------------------------------------------------------------------------------------


def test_mark_processing_wins_once_and_counts_the_attempt(alice):
    scan = make_scan_row(alice)

    assert scan_mark_processing(scan_id=scan.id) is True
    assert scan_mark_processing(scan_id=scan.id) is False

    scan.refresh_from_db()
    assert scan.status == Scan.Status.PROCESSING
    assert scan.attempts == 1
    assert scan.started_at is not None


def test_mark_done_stores_the_result_and_copies_its_fields(alice):
    scan = make_scan_row(alice, status=Scan.Status.PROCESSING)

    assert scan_mark_done(scan_id=scan.id, result=DONE_RESULT) is True

    scan.refresh_from_db()
    assert scan.status == Scan.Status.DONE
    assert scan.verdict == Scan.Verdict.FAKE
    assert scan.fake_probability == pytest.approx(0.91)
    assert scan.faces == DONE_RESULT["faces"]
    assert scan.timings == {"total_s": 0.4}
    assert scan.result == DONE_RESULT
    assert scan.finished_at is not None


def test_mark_done_needs_a_processing_scan(alice):
    scan = make_scan_row(alice)

    assert scan_mark_done(scan_id=scan.id, result=DONE_RESULT) is False
    scan.refresh_from_db()
    assert scan.status == Scan.Status.QUEUED


@pytest.mark.parametrize(
    "result",
    [
        {"verdict": "probably", "fake_probability": 0.5},
        {"verdict": "fake", "fake_probability": 1.5},
        {"verdict": "real", "fake_probability": None},
        {"verdict": "no_face", "fake_probability": 0.5},
    ],
    ids=["unknown-verdict", "probability-out-of-range", "verdict-without-probability", "no-face-with-probability"],
)
def test_mark_done_refuses_a_result_that_breaks_the_contract(alice, result):
    scan = make_scan_row(alice, status=Scan.Status.PROCESSING)

    with pytest.raises(ValueError):
        scan_mark_done(scan_id=scan.id, result=result)
    scan.refresh_from_db()
    assert scan.status == Scan.Status.PROCESSING


def test_no_face_is_stored_with_no_probability(alice):
    scan = make_scan_row(alice, status=Scan.Status.PROCESSING)

    scan_mark_done(scan_id=scan.id, result={"verdict": "no_face", "fake_probability": None, "faces": []})

    scan.refresh_from_db()
    assert (scan.verdict, scan.fake_probability) == (Scan.Verdict.NO_FACE, None)


@pytest.mark.parametrize("status", [Scan.Status.DONE, Scan.Status.FAILED])
def test_a_finished_scan_never_changes_again(alice, status):
    scan = make_scan_row(alice, status=status, verdict="real" if status == Scan.Status.DONE else "", error_message="x")

    assert scan_mark_processing(scan_id=scan.id) is False
    assert scan_update_progress(scan_id=scan.id, progress={"stage": "late"}) is False
    assert scan_mark_done(scan_id=scan.id, result=DONE_RESULT) is False
    assert scan_mark_failed(scan_id=scan.id, error_message="late failure") is False

    refreshed = Scan.objects.get(pk=scan.id)
    assert refreshed.status == status
    assert refreshed.error_message == "x"
    assert refreshed.progress == {}


def test_mark_failed_works_from_queued_and_processing(alice):
    queued = make_scan_row(alice)
    processing = make_scan_row(alice, status=Scan.Status.PROCESSING)

    assert scan_mark_failed(scan_id=queued.id, error_message="lost") is True
    assert scan_mark_failed(scan_id=processing.id, error_message="crashed") is True

    assert Scan.objects.get(pk=queued.id).error_message == "lost"
    assert Scan.objects.get(pk=processing.id).status == Scan.Status.FAILED


def test_progress_is_only_written_while_processing(alice):
    scan = make_scan_row(alice)

    assert scan_update_progress(scan_id=scan.id, progress={"stage": "early"}) is False
    scan_mark_processing(scan_id=scan.id)
    assert scan_update_progress(scan_id=scan.id, progress={"stage": "detecting faces", "faces_found": 2}) is True

    scan.refresh_from_db()
    assert scan.progress == {"stage": "detecting faces", "faces_found": 2}


def test_transitions_on_a_deleted_scan_are_no_ops(alice):
    scan = make_scan_row(alice)
    scan_id = scan.id
    scan.delete()

    assert scan_mark_processing(scan_id=scan_id) is False
    assert scan_mark_failed(scan_id=scan_id, error_message="gone") is False
