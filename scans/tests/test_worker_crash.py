"""Worker crashes and duplicate jobs: a scan whose worker died is run once more, then failed after a second crash,
and never stays `processing`; one job gives one result.

The crash tests run real `manage.py rqworker` subprocesses against the committed test database and Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.conf import settings as django_settings
from django.db import connection
from rq.job import Job
from rq.utils import now, utcformat

from scans.models import Scan
from scans.queues import (
    ANALYZE_JOB,
    RETRY_JOB_SUFFIX,
    SCAN_QUEUE,
    redis_eviction_policy,
    redis_eviction_warning,
    scan_queue,
)
from scans.recovery import WORKER_CRASHED_TWICE_MESSAGE, CrashOutcome, scans_recover_orphaned
from scans.selectors import platform_health
from scans.services import scan_create
from scans.tests.uploads import gradient_png, make_scan_row, upload

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
# The bound: a crashed worker's scan is finished within this long of another worker running.
RECOVERY_DEADLINE_S = 60
# Frames of the noisy test clip, all analysed (UNMASK_VIDEO_FRAMES below): long enough to kill a worker mid-scan,
# short enough for a survivor to run the whole scan again well within the deadline.
CLIP_FRAMES = 60


def _noisy_avi(frames: int, size: tuple[int, int] = (480, 360)) -> bytes:
    """A clip of random frames: every sampled frame costs the face detector real work, so the job runs for a while."""
    generator = np.random.default_rng(5)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "noise.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, size)
        for _ in range(frames):
            writer.write(generator.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        writer.release()
        return path.read_bytes()


def _worker_environment() -> dict[str, str]:
    database = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}"
            f"/{database['NAME']}"
        ),
        "REDIS_URL": django_settings.REDIS_URL,
        "UNMASK_MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
        "UNMASK_MODEL_ROOT": str(django_settings.MODEL_ROOT),
        "UNMASK_VIDEO_FRAMES": str(CLIP_FRAMES),
        "UNMASK_TF_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen]]:
    """Starts `manage.py rqworker scans` subprocesses, each in its own process group; stops any left at the end."""
    started: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        log = (tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", SCAN_QUEUE, "--worker-class", "scans.worker.ScanWorker"],
            cwd=REPOSITORY_ROOT,
            env=_worker_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _wait_for(condition: Callable[[], bool], *, timeout_s: float, what: str, logs: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    worker_logs = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(logs.glob("*.log")))
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}\n{worker_logs}")


def _scan_state(scan_id: object) -> tuple[str, dict]:
    scan = Scan.objects.only("status", "progress").get(pk=scan_id)
    return scan.status, scan.progress or {}


def _wait_until_analysing(scan_id: object, *, attempt: int, logs: Path) -> None:
    """Until the scan's `attempt`-th run has analysed at least one frame (a worker is mid-scan)."""

    def analysing() -> bool:
        scan = Scan.objects.only("status", "progress", "attempts").get(pk=scan_id)
        return (
            scan.status == Scan.Status.PROCESSING
            and scan.attempts == attempt
            and (scan.progress or {}).get("frames_done", 0) >= 1
        )

    _wait_for(analysing, timeout_s=90, what=f"a worker to be analysing frames (attempt {attempt})", logs=logs)


def _kill_the_worker_running(scan_id: object, workers: dict[int, subprocess.Popen], redis_conn) -> None:
    """SIGKILL the whole process group of the worker that holds the scan's current job."""
    job_id = Scan.objects.values_list("job_id", flat=True).get(pk=scan_id)
    busy_worker = Job.fetch(job_id, connection=redis_conn).worker_name
    doomed = workers.pop(int(redis_conn.hget(f"rq:worker:{busy_worker}", "pid")))
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_scan_has_its_scan_run_again_and_finished_by_another_worker(
    alice, tiny_models, redis_conn, start_worker, tmp_path
):
    workers = {process.pid: process for process in (start_worker("first"), start_worker("second"))}
    _wait_for(lambda: platform_health()["workers"] == 2, timeout_s=180, what="both workers to start", logs=tmp_path)

    scan = scan_create(owner=alice, uploaded_file=upload(_noisy_avi(frames=CLIP_FRAMES), "long.avi"))
    _wait_until_analysing(scan.id, attempt=1, logs=tmp_path)
    _kill_the_worker_running(scan.id, workers, redis_conn)
    killed_at = time.monotonic()
    (survivor,) = workers.values()

    _wait_for(
        lambda: _scan_state(scan.id)[0] in Scan.TERMINAL_STATUSES,
        timeout_s=RECOVERY_DEADLINE_S,
        what="the surviving worker to run the orphaned scan again and finish it",
        logs=tmp_path,
    )
    assert time.monotonic() - killed_at < RECOVERY_DEADLINE_S
    scan.refresh_from_db()
    assert (scan.status, scan.error_message) == (Scan.Status.DONE, "")
    assert scan.attempts == 2
    assert scan.job_id == f"scan-{scan.id}{RETRY_JOB_SUFFIX}1"
    # A full result of the second run: noise has no face, so the verdict says so.
    assert (scan.result["kind"], scan.verdict) == ("video", Scan.Verdict.NO_FACE)
    assert survivor.poll() is None, "the surviving worker must keep running"


@pytest.mark.django_db(transaction=True)
def test_a_scan_that_crashes_a_worker_twice_is_failed_with_that_reason_by_a_third(
    alice, tiny_models, redis_conn, start_worker, tmp_path
):
    workers = {
        process.pid: process for process in (start_worker("first"), start_worker("second"), start_worker("third"))
    }
    _wait_for(lambda: platform_health()["workers"] == 3, timeout_s=240, what="three workers to start", logs=tmp_path)

    scan = scan_create(owner=alice, uploaded_file=upload(_noisy_avi(frames=CLIP_FRAMES), "long.avi"))
    _wait_until_analysing(scan.id, attempt=1, logs=tmp_path)
    _kill_the_worker_running(scan.id, workers, redis_conn)
    _wait_until_analysing(scan.id, attempt=2, logs=tmp_path)
    _kill_the_worker_running(scan.id, workers, redis_conn)
    killed_at = time.monotonic()
    (last_worker,) = workers.values()

    _wait_for(
        lambda: _scan_state(scan.id)[0] in Scan.TERMINAL_STATUSES,
        timeout_s=RECOVERY_DEADLINE_S,
        what="the last worker to fail the scan that crashed two workers",
        logs=tmp_path,
    )
    assert time.monotonic() - killed_at < RECOVERY_DEADLINE_S
    scan.refresh_from_db()
    assert (scan.status, scan.error_message) == (Scan.Status.FAILED, WORKER_CRASHED_TWICE_MESSAGE)
    assert scan.attempts == 2
    assert last_worker.poll() is None


# --- Orphan detection, in process ----------------------------------------------------------------------------


def _started_job_for(scan: Scan, *, worker_name: str, redis_conn) -> None:
    """Records in Redis that `worker_name` started the scan's job, as RQ does when a worker takes it."""
    job = scan_queue().enqueue(ANALYZE_JOB, str(scan.id), job_id=scan.job_id)
    with redis_conn.pipeline() as pipeline:
        job.prepare_for_execution(worker_name, pipeline=pipeline)
        pipeline.execute()


def _register_worker(redis_conn, name: str, *, hostname: str, pid: int, death: bool = False) -> None:
    """A worker's Redis hash as RQ writes it, with a fresh heartbeat (what else makes it dead is the test's)."""
    details = {
        "hostname": hostname,
        "pid": str(pid),
        "birth": "2026-01-01T00:00:00Z",
        "last_heartbeat": utcformat(now()),
    }
    if death:
        details["death"] = "2026-01-01T00:01:00Z"
    redis_conn.hset(f"rq:worker:{name}", mapping=details)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.django_db
def test_a_processing_scan_whose_worker_process_is_gone_is_queued_once_more(
    alice, redis_conn, django_capture_on_commit_callbacks
):
    import socket

    scan = make_scan_row(alice, status=Scan.Status.PROCESSING, job_id="scan-orphan", attempts=1)
    _started_job_for(scan, worker_name="gone", redis_conn=redis_conn)
    _register_worker(redis_conn, "gone", hostname=socket.gethostname(), pid=_dead_pid())

    with django_capture_on_commit_callbacks(execute=True):
        outcomes = scans_recover_orphaned(connection=redis_conn)

    assert outcomes == {str(scan.id): CrashOutcome.REQUEUED}
    scan.refresh_from_db()
    assert (scan.status, scan.attempts, scan.error_message) == (Scan.Status.QUEUED, 1, "")
    assert scan.job_id == f"scan-{scan.id}{RETRY_JOB_SUFFIX}1"
    assert scan.job_id in scan_queue().job_ids
    # Found again by the next check (the dead worker's job is still recorded): nothing more happens.
    assert scans_recover_orphaned(connection=redis_conn) == {}


@pytest.mark.django_db
def test_a_scan_whose_second_run_lost_its_worker_too_is_failed_saying_so(alice, redis_conn):
    import socket

    scan = make_scan_row(alice, status=Scan.Status.PROCESSING, job_id=f"scan-x{RETRY_JOB_SUFFIX}1", attempts=2)
    _started_job_for(scan, worker_name="gone-again", redis_conn=redis_conn)
    _register_worker(redis_conn, "gone-again", hostname=socket.gethostname(), pid=_dead_pid())

    assert scans_recover_orphaned(connection=redis_conn) == {str(scan.id): CrashOutcome.FAILED}
    scan.refresh_from_db()
    assert (scan.status, scan.error_message) == (Scan.Status.FAILED, WORKER_CRASHED_TWICE_MESSAGE)
    assert scan_queue().job_ids == [scan.job_id]  # nothing new enqueued


@pytest.mark.django_db
def test_a_scan_whose_worker_key_expired_or_recorded_its_death_is_recovered(alice, redis_conn):
    expired = make_scan_row(alice, status=Scan.Status.PROCESSING, job_id="scan-expired", attempts=1)
    _started_job_for(expired, worker_name="expired", redis_conn=redis_conn)
    died = make_scan_row(alice, status=Scan.Status.PROCESSING, job_id="scan-died", attempts=2)
    _started_job_for(died, worker_name="died", redis_conn=redis_conn)
    _register_worker(redis_conn, "died", hostname="elsewhere", pid=1, death=True)

    assert scans_recover_orphaned(connection=redis_conn) == {
        str(expired.id): CrashOutcome.REQUEUED,
        str(died.id): CrashOutcome.FAILED,
    }


@pytest.mark.django_db
def test_scans_of_live_workers_and_finished_scans_are_left_alone(alice, redis_conn):
    import socket

    running_here = make_scan_row(alice, status=Scan.Status.PROCESSING, job_id="scan-here")
    _started_job_for(running_here, worker_name="here", redis_conn=redis_conn)
    _register_worker(redis_conn, "here", hostname=socket.gethostname(), pid=os.getpid())
    running_elsewhere = make_scan_row(alice, status=Scan.Status.PROCESSING, job_id="scan-elsewhere")
    _started_job_for(running_elsewhere, worker_name="far", redis_conn=redis_conn)
    _register_worker(redis_conn, "far", hostname="another-host", pid=1)
    myself = make_scan_row(alice, status=Scan.Status.PROCESSING, job_id="scan-mine")
    _started_job_for(myself, worker_name="me", redis_conn=redis_conn)
    finished = make_scan_row(alice, status=Scan.Status.DONE, verdict="real", fake_probability=0.1, job_id="scan-done")
    _started_job_for(finished, worker_name="gone", redis_conn=redis_conn)

    assert scans_recover_orphaned(connection=redis_conn, live_worker_names={"me"}) == {}
    assert set(Scan.objects.values_list("status", flat=True)) == {Scan.Status.PROCESSING, Scan.Status.DONE}


@pytest.mark.django_db
def test_a_worker_recovers_orphaned_scans_when_it_starts(
    alice, tiny_models, redis_conn, django_capture_on_commit_callbacks
):
    import socket

    from scans.worker import ScanWorker

    scan = make_scan_row(alice, status=Scan.Status.PROCESSING, job_id="scan-before-restart", attempts=2)
    _started_job_for(scan, worker_name="previous", redis_conn=redis_conn)
    _register_worker(redis_conn, "previous", hostname=socket.gethostname(), pid=_dead_pid())
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

    try:
        ScanWorker([scan_queue()], connection=redis_conn).work(burst=True, logging_level="WARNING")
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)

    scan.refresh_from_db()
    assert (scan.status, scan.error_message) == (Scan.Status.FAILED, WORKER_CRASHED_TWICE_MESSAGE)


# --- The same job twice -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_same_job_run_twice_gives_one_result(alice, tiny_models, redis_conn, run_worker):
    scan = scan_create(owner=alice, uploaded_file=upload(gradient_png(), "sky.png"))
    first = run_worker()
    scan.refresh_from_db()
    result, finished_at = scan.result, scan.finished_at
    assert (scan.status, first.successful_job_count) == (Scan.Status.DONE, 1)

    job = scan_queue().enqueue(ANALYZE_JOB, str(scan.id), job_id=f"{scan.job_id}-again")
    run_worker()

    job.refresh()
    assert job.return_value() == "skipped"
    scan.refresh_from_db()
    assert (scan.result, scan.finished_at, scan.attempts) == (result, finished_at, 1)


# --- Redis eviction policy ------------------------------------------------------------------------------------------


@pytest.fixture
def eviction_policy(redis_conn) -> Iterator[Callable[[str], None]]:
    """Sets the shared Redis's maxmemory-policy for one test and always restores the original."""
    original = redis_conn.config_get("maxmemory-policy")["maxmemory-policy"]

    def set_policy(policy: str) -> None:
        redis_conn.config_set("maxmemory-policy", policy)

    yield set_policy
    redis_conn.config_set("maxmemory-policy", original)


def test_noeviction_gives_no_warning(eviction_policy, redis_conn):
    eviction_policy("noeviction")

    assert redis_eviction_policy(redis_conn) == "noeviction"
    assert redis_eviction_warning(redis_conn) is None


@pytest.mark.django_db
def test_an_evicting_redis_is_warned_about_in_health_and_at_worker_start(
    eviction_policy, redis_conn, tiny_models, caplog
):
    from scans.worker import ScanWorker

    eviction_policy("allkeys-lru")

    redis_state = platform_health()["redis"]
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        ScanWorker([scan_queue()], connection=redis_conn).work(burst=True, logging_level="WARNING")
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)

    assert redis_state["eviction_policy"] == "allkeys-lru"
    assert "noeviction" in redis_state["warning"]
    assert any("allkeys-lru" in record.getMessage() for record in caplog.records if record.levelname == "WARNING")
