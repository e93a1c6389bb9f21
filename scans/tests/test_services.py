"""scan_create's enqueueing on commit, scan_delete and the conditional transitions (the content checks:
test_uploads.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rq.job import Job

from scans.models import Scan
from scans.queues import SCAN_QUEUE
from scans.services import (
    scan_create,
    scan_delete,
    scan_mark_done,
    scan_mark_failed,
    scan_mark_processing,
    scan_update_progress,
)
from scans.tests.uploads import avi_bytes, image_bytes, make_scan_row, upload

pytestmark = pytest.mark.django_db

DONE_RESULT = {
    "verdict": "fake",
    "fake_probability": 0.91,
    "faces": [{"index": 0, "box": [1, 2, 3, 4], "fake_probability": 0.91, "verdict": "fake"}],
    "timings": {"total_s": 0.4},
}


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
