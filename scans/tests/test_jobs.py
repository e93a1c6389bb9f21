"""The analysis job, run by a real ScanWorker in burst mode against the real Redis, on real media."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django_rq.workers import get_worker_class
from rq.exceptions import AbandonedJobError
from rq.job import Job, JobStatus
from rq.timeouts import JobTimeoutException

from ml.errors import MediaError
from ml.faces import load_image
from scans import analysis
from scans.jobs import INTERNAL_ERROR_MESSAGE, analyze_scan, analyze_scan_on_failure
from scans.models import Scan
from scans.queues import SCAN_QUEUE, scan_queue
from scans.services import scan_create, scan_mark_processing
from scans.tests.uploads import face_photo, gradient_png, make_scan_row, short_clip, upload
from scans.worker import ScanWorker
from training.models import ModelVersion

pytestmark = pytest.mark.django_db


def _upload_file(owner, path: Path) -> Scan:
    return scan_create(owner=owner, uploaded_file=upload(path.read_bytes(), path.name))


def test_an_image_with_a_face_is_analysed_and_stored(alice, data_dir, tiny_models, run_worker):
    image_version, _video_version = tiny_models
    scan = _upload_file(alice, face_photo(data_dir))

    worker = run_worker()

    scan.refresh_from_db()
    assert worker.successful_job_count == 1
    assert scan.status == Scan.Status.DONE, scan.error_message
    assert scan.verdict in {Scan.Verdict.REAL, Scan.Verdict.FAKE, Scan.Verdict.UNCERTAIN}
    assert 0.0 <= scan.fake_probability <= 1.0
    assert len(scan.faces) == 1
    face = scan.faces[0]
    assert len(face["box"]) == 4 and face["box"][2] > 20 and face["box"][3] > 20
    assert scan.fake_probability == pytest.approx(face["fake_probability"])
    assert scan.result["models"]["image"] == image_version.label
    assert scan.video_model_version is None
    assert set(scan.timings) >= {"decode_s", "detect_s", "model_s", "total_s"}
    assert scan.progress == {"stage": "done"}
    assert scan.attempts == 1
    assert scan.started_at <= scan.finished_at
    assert scan.error_message == ""


def test_an_image_without_a_face_is_no_face_with_no_probability(alice, tiny_models, run_worker):
    scan = scan_create(owner=alice, uploaded_file=upload(gradient_png(), "sky.png"))

    run_worker()

    scan.refresh_from_db()
    assert scan.status == Scan.Status.DONE
    assert scan.verdict == Scan.Verdict.NO_FACE
    assert scan.fake_probability is None
    assert scan.faces == []


def test_a_short_video_is_analysed_with_the_video_model(alice, data_dir, tiny_models, run_worker, settings):
    settings.UNMASK_VIDEO_FRAMES = 8
    image_version, video_version = tiny_models
    scan = _upload_file(alice, short_clip(data_dir))

    run_worker()

    scan.refresh_from_db()
    assert scan.status == Scan.Status.DONE, scan.error_message
    assert scan.verdict in {Scan.Verdict.REAL, Scan.Verdict.FAKE, Scan.Verdict.UNCERTAIN}
    assert 0.0 <= scan.fake_probability <= 1.0
    assert scan.result["models"] == {"image": image_version.label, "video": video_version.label}
    assert scan.result["media"]["frames_analyzed"] == 8
    person = scan.faces[0]
    assert person["n_frames"] == len(person["frame_indices"]) == len(person["frame_scores"])
    assert person["n_frames"] > 0


def test_unreadable_media_fails_the_scan_with_the_ml_message_verbatim(alice, tiny_models, run_worker, tmp_path):
    scan = scan_create(owner=alice, uploaded_file=upload(gradient_png(), "sky.png"))
    garbage = b"this file was replaced after the upload was accepted"
    Path(scan.file.path).write_bytes(garbage)
    (tmp_path / "garbage.png").write_bytes(garbage)
    with pytest.raises(MediaError) as expected:
        load_image(tmp_path / "garbage.png")

    run_worker()

    scan.refresh_from_db()
    assert scan.status == Scan.Status.FAILED
    assert scan.error_message == str(expected.value)
    assert scan.verdict == ""


def test_a_model_that_cannot_load_fails_the_scan_with_a_generic_message(alice, tiny_models, run_worker):
    image_version, _video_version = tiny_models
    scan = scan_create(owner=alice, uploaded_file=upload(gradient_png(), "sky.png"))
    Path(image_version.weights.path).write_bytes(b"not a keras file")

    run_worker()

    scan.refresh_from_db()
    assert scan.status == Scan.Status.FAILED
    assert scan.error_message == INTERNAL_ERROR_MESSAGE


def test_a_duplicate_job_for_a_finished_scan_does_nothing(alice, tiny_models, run_worker, redis_conn):
    scan = scan_create(owner=alice, uploaded_file=upload(gradient_png(), "sky.png"))
    run_worker()
    scan.refresh_from_db()
    finished_at = scan.finished_at

    duplicate = scan_queue().enqueue("scans.jobs.analyze_scan", str(scan.id))
    run_worker()

    scan.refresh_from_db()
    assert duplicate.latest_result().return_value == "skipped"
    assert (scan.status, scan.finished_at, scan.attempts) == (Scan.Status.DONE, finished_at, 1)


def test_a_job_for_a_scan_deleted_before_it_ran_does_nothing(alice, tiny_models, run_worker):
    scan = scan_create(owner=alice, uploaded_file=upload(gradient_png(), "sky.png"))
    scan_id = scan.id
    Scan.objects.filter(pk=scan_id).delete()

    worker = run_worker()

    assert worker.successful_job_count == 1
    assert worker.failed_job_count == 0
    assert not Scan.objects.filter(pk=scan_id).exists()


def test_a_job_past_its_timeout_fails_the_scan_saying_so(
    alice, data_dir, tiny_models, run_worker, settings, monkeypatch
):
    settings.UNMASK_VIDEO_JOB_TIMEOUT = 1
    video = sorted((data_dir / "videos" / "ffpp" / "real").glob("*.mp4"))[0]
    scan = _upload_file(alice, video)
    # The real analysis can finish inside a second on a fast machine: make its last stage hang, as a stuck
    # decoder or model would, so that the timeout (RQ's SIGALRM in the worker process) is what ends it.
    store = analysis.evidence_store

    def store_slowly(**kwargs):
        time.sleep(30)
        return store(**kwargs)

    monkeypatch.setattr(analysis, "evidence_store", store_slowly)

    worker = run_worker()

    scan.refresh_from_db()
    assert worker.failed_job_count == 1
    assert scan.status == Scan.Status.FAILED
    assert "did not finish within 1 seconds" in scan.error_message
    assert Job.fetch(scan.job_id, connection=scan_queue().connection).get_status() == JobStatus.FAILED


def test_a_timeout_that_tensorflow_wrapped_still_fails_the_scan_as_a_timeout(alice, monkeypatch):
    """RQ's alarm can go off inside a tf.function call, which re-raises it as a TypeError (seen on a slow machine)."""
    from scans import jobs

    scan = make_scan_row(alice, status=Scan.Status.QUEUED, kind=Scan.Kind.VIDEO)

    def analyze_until_the_alarm(**kwargs):
        try:
            raise JobTimeoutException("Task exceeded maximum timeout value (1 seconds)")
        except JobTimeoutException as alarm:
            raise TypeError(f"Binding inputs to tf.function failed due to `{alarm}`") from alarm

    monkeypatch.setattr(jobs, "scan_analyze", analyze_until_the_alarm)

    with pytest.raises(JobTimeoutException):
        analyze_scan(str(scan.id))
    scan.refresh_from_db()
    assert scan.status == Scan.Status.FAILED
    assert "did not finish within" in scan.error_message


def test_the_failure_callback_fails_a_scan_the_job_left_processing(alice, redis_conn):
    scan = make_scan_row(alice, job_id="scan-callback")
    scan_mark_processing(scan_id=scan.id)
    job = scan_queue().enqueue("scans.jobs.analyze_scan", str(scan.id), job_id=scan.job_id)

    analyze_scan_on_failure(job, redis_conn, JobTimeoutException, JobTimeoutException("too slow"), None)

    scan.refresh_from_db()
    assert scan.status == Scan.Status.FAILED
    assert "did not finish within" in scan.error_message


def test_the_failure_callback_of_a_job_the_scan_has_moved_on_from_changes_nothing(alice, redis_conn):
    """RQ reports a crashed worker's job as abandoned long after the scan was re-queued under a new job."""
    scan = make_scan_row(alice, status=Scan.Status.QUEUED, attempts=1, job_id="scan-x-retry1")
    crashed_job = scan_queue().enqueue("scans.jobs.analyze_scan", str(scan.id), job_id="scan-x")

    analyze_scan_on_failure(crashed_job, redis_conn, AbandonedJobError, AbandonedJobError(), None)

    scan.refresh_from_db()
    assert (scan.status, scan.error_message) == (Scan.Status.QUEUED, "")


def test_the_failure_callback_leaves_a_finished_scan_alone(alice, redis_conn):
    scan = make_scan_row(alice, status=Scan.Status.DONE, verdict=Scan.Verdict.REAL, fake_probability=0.1)
    job = scan_queue().enqueue("scans.jobs.analyze_scan", str(scan.id))

    analyze_scan_on_failure(job, redis_conn, RuntimeError, RuntimeError("late"), None)

    scan.refresh_from_db()
    assert (scan.status, scan.error_message) == (Scan.Status.DONE, "")


def test_analyze_scan_returns_skipped_for_a_scan_that_is_not_queued(alice):
    scan = make_scan_row(alice, status=Scan.Status.FAILED, error_message="earlier failure")

    assert analyze_scan(str(scan.id)) == "skipped"
    scan.refresh_from_db()
    assert scan.error_message == "earlier failure"


@pytest.mark.django_db(transaction=True)
def test_the_scan_worker_command_runs_jobs_with_the_scan_worker(alice, tiny_models, redis_conn, _private_media):
    """`manage.py scan_worker`, as `make run` and the compose file start it, in its own process."""
    scan = scan_create(owner=alice, uploaded_file=upload(gradient_png(), "sky.png"))
    assert redis_conn.llen(f"rq:queue:{SCAN_QUEUE}") == 1
    database = connection.settings_dict
    environment = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}"
            f"/{database['NAME']}"
        ),
        "REDIS_URL": django_settings.REDIS_URL,
        "UNMASK_MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
        "UNMASK_MODEL_ROOT": str(django_settings.MODEL_ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }

    completed = subprocess.run(
        [sys.executable, "manage.py", "scan_worker", "--burst"],
        cwd=Path(__file__).resolve().parents[2],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"Scan worker serving: {SCAN_QUEUE}" in completed.stdout
    scan.refresh_from_db()
    assert scan.status == Scan.Status.DONE, completed.stderr[-3000:]
    assert scan.verdict == Scan.Verdict.NO_FACE


@pytest.mark.real_models
def test_the_shipped_default_models_analyse_a_real_face_photo_end_to_end(alice, data_dir, api_client_for, run_worker):
    """The models `make run` registers, from upload through the API to the verdict in the API."""
    call_command("register_shipped_models", stdout=io.StringIO())
    image_version = ModelVersion.objects.get(kind="image", is_active=True)
    client = api_client_for(alice)

    with face_photo(data_dir).open("rb") as handle:
        created = client.post(reverse("api:scan-list"), {"file": handle}, format="multipart")
    assert created.status_code == 202, created.content
    run_worker()

    detail = client.get(created.json()["url"]).json()
    assert detail["status"] == "done", detail["error"]
    assert detail["verdict"] in {"real", "fake", "uncertain"}
    assert 0.0 <= detail["fake_probability"] <= 1.0
    assert len(detail["faces"]) == 1
    assert detail["models"]["image"]["label"] == image_version.label
    assert detail["result"]["models"]["image"] == image_version.label


def test_rqworker_uses_the_scan_worker_even_without_the_worker_class_option():
    assert get_worker_class() is ScanWorker
