"""A dead worker is noticed from RQ's own heartbeats: health stops counting it, and the reconciler alone (no other
worker running) runs its scan once more, within the heartbeat TTL plus one reconciliation interval.

Real `scan_worker` and `reconcile_scans --loop` subprocesses against the committed test database and Redis, with a
short heartbeat (the defaults: a beat every 5 s, dead 30 s after the last one, a pass every 15 s: under 60 s).
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest
from rq.job import Job, JobStatus
from rq.utils import now, utcformat

from scans.heartbeats import heartbeat_is_fresh, live_worker_count
from scans.models import Scan
from scans.queues import RETRY_JOB_SUFFIX, SCAN_QUEUE
from scans.selectors import platform_health
from scans.services import scan_create
from scans.tests.processes import MANAGE, ProcessStarter, pid_exists, wait_for
from scans.tests.test_worker_crash import CLIP_FRAMES, _noisy_avi, _wait_until_analysing
from scans.tests.uploads import upload

HEARTBEAT_TTL_S = 6
RECONCILE_INTERVAL_S = 1
# What the reconciler may take beyond the TTL: a pass, the requeue, and a loaded machine.
SLACK_S = 6
FAST_HEARTBEATS = {
    "UNMASK_VIDEO_FRAMES": str(CLIP_FRAMES),
    "UNMASK_WORKER_HEARTBEAT_TTL": str(HEARTBEAT_TTL_S),
    "UNMASK_WORKER_HEARTBEAT_INTERVAL": "1",
    "UNMASK_RECONCILE_INTERVAL": str(RECONCILE_INTERVAL_S),
}


def _start_worker(start_process: ProcessStarter, name: str):
    worker = start_process(name, [*MANAGE, "scan_worker"], **FAST_HEARTBEATS)
    wait_for(lambda: platform_health()["workers"] == 1, timeout_s=180, what=f"{name} to start", logs=start_process.logs)
    return worker


def _requeued_after_a_crash(scan_id: object) -> bool:
    scan = Scan.objects.only("status", "job_id").get(pk=scan_id)
    return scan.status == Scan.Status.QUEUED and scan.job_id == f"scan-{scan_id}{RETRY_JOB_SUFFIX}1"


@pytest.fixture
def settings_with_fast_heartbeats(settings):
    settings.UNMASK_WORKER_HEARTBEAT_TTL = HEARTBEAT_TTL_S
    settings.UNMASK_WORKER_HEARTBEAT_INTERVAL = 1
    return settings


@pytest.mark.django_db(transaction=True)
def test_a_sigkilled_worker_drops_out_of_health_and_the_reconciler_alone_runs_its_scan_again(
    alice, tiny_models, redis_conn, start_process: ProcessStarter, settings_with_fast_heartbeats
):
    worker = _start_worker(start_process, "doomed-worker")
    start_process("reconciler", [*MANAGE, "reconcile_scans", "--loop"], **FAST_HEARTBEATS)
    scan = scan_create(owner=alice, uploaded_file=upload(_noisy_avi(frames=CLIP_FRAMES), "long.avi"))
    _wait_until_analysing(scan.id, attempt=1, logs=start_process.logs)

    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)

    recovered_in = wait_for(
        lambda: _requeued_after_a_crash(scan.id),
        timeout_s=60,
        what="the reconciler to run the dead worker's scan again",
        logs=start_process.logs,
    )
    assert recovered_in < HEARTBEAT_TTL_S + RECONCILE_INTERVAL_S + SLACK_S
    # Health counts fresh heartbeats only, though RQ still lists the dead worker until its maintenance runs.
    wait_for(lambda: platform_health()["workers"] == 0, timeout_s=HEARTBEAT_TTL_S + SLACK_S, what="health to drop it")
    # A new worker takes the scan's second run and finishes it.
    _start_worker(start_process, "new-worker")
    wait_for(
        lambda: Scan.objects.filter(pk=scan.pk, status=Scan.Status.DONE).exists(),
        timeout_s=120,
        what="the second run to finish",
        logs=start_process.logs,
    )
    assert Scan.objects.get(pk=scan.pk).attempts == 2


@pytest.mark.django_db(transaction=True)
def test_a_worker_that_stops_beating_is_noticed_from_its_heartbeat_alone(
    alice, tiny_models, redis_conn, start_process: ProcessStarter, settings_with_fast_heartbeats
):
    """Frozen (SIGSTOP), its process still exists, as a worker on another machine would for this one: only the
    expired heartbeat says it is gone, and RQ's abandoned-job handling, run by the reconciler, acts on it."""
    worker = _start_worker(start_process, "frozen-worker")
    start_process("reconciler", [*MANAGE, "reconcile_scans", "--loop"], **FAST_HEARTBEATS)
    scan = scan_create(owner=alice, uploaded_file=upload(_noisy_avi(frames=CLIP_FRAMES), "long.avi"))
    _wait_until_analysing(scan.id, attempt=1, logs=start_process.logs)
    first_job_id = Scan.objects.values_list("job_id", flat=True).get(pk=scan.pk)

    os.killpg(worker.pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        wait_for(
            lambda: _requeued_after_a_crash(scan.id),
            timeout_s=60,
            what="the reconciler to notice the silent worker",
            logs=start_process.logs,
        )
        waited = time.monotonic() - stopped_at
        assert pid_exists(worker.pid)
        # Not before its last beat had expired, and soon after.
        assert HEARTBEAT_TTL_S - 2 <= waited < HEARTBEAT_TTL_S + RECONCILE_INTERVAL_S + SLACK_S
        old_job = Job.fetch(first_job_id, connection=redis_conn)
        wait_for(
            lambda: old_job.get_status(refresh=True) == JobStatus.FAILED,
            timeout_s=10,
            what="RQ to fail the abandoned job",
        )
        assert "AbandonedJobError" in old_job.latest_result().exc_string
        # RQ scores the job's expiry in whole seconds, so health may count the worker a moment longer.
        wait_for(lambda: platform_health()["workers"] == 0, timeout_s=3, what="health to drop the silent worker")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        os.killpg(worker.pid, signal.SIGCONT)


@pytest.mark.django_db
def test_health_counts_only_workers_whose_heartbeat_is_fresh(redis_conn, settings_with_fast_heartbeats):
    fresh, stale = "rq:worker:fresh", "rq:worker:stale"
    redis_conn.hset(fresh, mapping={"last_heartbeat": utcformat(now())})
    # A key that never expires (a worker of another kind, or with RQ's long TTL) but that stopped beating.
    redis_conn.hset(stale, mapping={"last_heartbeat": utcformat(now() - timedelta(seconds=HEARTBEAT_TTL_S + 1))})
    redis_conn.sadd(f"rq:workers:{SCAN_QUEUE}", fresh, stale)

    assert live_worker_count(redis_conn, SCAN_QUEUE) == 1
    assert platform_health()["workers"] == 1
    assert not heartbeat_is_fresh(None) and not heartbeat_is_fresh(b"not a time")
