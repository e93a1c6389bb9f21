"""Scans whose job is gone: reconciliation of lost jobs, and one more run after a worker crashed mid-scan.

Two ways a scan can be left unfinished with nothing working on it, and who notices:

- its job never started, or ran past its timeout, or ended without finishing the row: `scans_reconcile`,
  run every UNMASK_RECONCILE_INTERVAL seconds by `manage.py reconcile_scans --loop`;
- its worker died under it (SIGKILL, out of memory). `ScanWorker` runs jobs in its own process, so the scan
  stays `processing` and its job sits in RQ's started registry. The worker's heartbeats stop
  (`scans.heartbeats`), so within UNMASK_WORKER_HEARTBEAT_TTL seconds its Redis key and its job's execution
  expire; then RQ's abandoned-job handling (`scans_recover_abandoned`) hands the job to its failure callback,
  and `scans_recover_orphaned` sees the worker dead. Both run in every reconciliation pass and in every
  worker's maintenance; a dead worker on this host is seen at once by its missing process.

Either way a crashed scan gets one more run (`scan_retry_after_crash`) and is failed after a second crash.
Every change is a conditional update, so a job finishing meanwhile wins and a finished scan is never touched.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.worker import Worker

from scans.heartbeats import heartbeat_is_fresh
from scans.models import Scan
from scans.queues import (
    REQUEUED_JOB_SUFFIX,
    job_id_for,
    job_timeout_for,
    retry_job_id_for,
    scan_queue,
    scan_queue_names,
    timeout_message,
)
from scans.services import scan_enqueue, scan_mark_failed

logger = logging.getLogger(__name__)

_LIVE_JOB_STATUSES = frozenset(
    {JobStatus.CREATED, JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
)
LOST_BEFORE_START_MESSAGE = "The analysis job was lost before it could start. Please upload the file again."
LOST_DOWNLOAD_MESSAGE = "The download of the linked media was lost or took too long. Please submit the link again."
WORKER_CRASHED_TWICE_MESSAGE = (
    "The analysis was stopped twice because the worker analysing this file crashed (for example, it ran out "
    "of memory), so it was not tried again. The file may be too large or damaged for analysis."
)
# Runs of the analysis a scan gets when workers crash under it: the first, and one retry.
MAX_ANALYSIS_ATTEMPTS = 2


@dataclass
class ReconcileReport:
    """What one reconciliation pass did, scan ids per outcome."""

    checked: int = 0
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class CrashOutcome(enum.StrEnum):
    """What `scan_retry_after_crash` did."""

    REQUEUED = "requeued"
    FAILED = "failed"
    UNCHANGED = "unchanged"


def scans_reconcile(*, grace_seconds: int = 60, now: datetime | None = None) -> ReconcileReport:
    """Finish scans whose job is gone, so that no scan waits forever.

    First the scans of dead workers: RQ's abandoned-job handling (`scans_recover_abandoned`) and the check of
    the workers of processing scans (`scans_recover_orphaned`), whatever the scans' age. Then it looks at
    queued and processing scans older than `grace_seconds` (a just-committed scan may not be enqueued yet). A queued scan with no live RQ job that never started is re-enqueued once; after that,
    or when it had started, it is marked failed. A processing scan that has run past its kind's job timeout
    (plus the grace) is marked failed; one whose job is no longer live lost its worker, and goes to
    `scan_retry_after_crash` (one more run, or failed after the second crash). Done and failed scans are
    never touched: every change here is a conditional update, so a job finishing meanwhile wins.
    """
    now = now or timezone.now()
    connection = scan_queue().connection
    report = ReconcileReport()
    scans_recover_abandoned(connection=connection)
    for scan_id, outcome in scans_recover_orphaned(connection=connection).items():
        (report.requeued if outcome == CrashOutcome.REQUEUED else report.failed).append(scan_id)
    # A scan by URL whose download job is gone, or ran past its limit, would wait forever: it fails saying so.
    fetching = Scan.objects.filter(
        status=Scan.Status.FETCHING, created_at__lt=now - timedelta(seconds=grace_seconds)
    ).values_list("id", flat=True)
    for scan_id in fetching:
        report.checked += 1
        too_old = now - timedelta(seconds=settings.UNMASK_URL_SCAN_TIMEOUT + 60 + grace_seconds)
        job_is_live = _job_status(connection, f"fetch-{scan_id}") in _LIVE_JOB_STATUSES
        if job_is_live and Scan.objects.filter(pk=scan_id, created_at__gte=too_old).exists():
            continue
        if scan_mark_failed(scan_id=scan_id, error_message=LOST_DOWNLOAD_MESSAGE):
            report.failed.append(str(scan_id))
    unfinished = Scan.objects.filter(
        status__in=[Scan.Status.QUEUED, Scan.Status.PROCESSING],
        created_at__lt=now - timedelta(seconds=grace_seconds),
    ).only("id", "kind", "status", "job_id", "attempts", "created_at", "started_at")
    for scan in unfinished.iterator():
        report.checked += 1
        job_is_live = _job_status(connection, scan.job_id) in _LIVE_JOB_STATUSES
        if scan.status == Scan.Status.QUEUED:
            if job_is_live:
                continue
            if scan.attempts == 0 and not scan.job_id.endswith(REQUEUED_JOB_SUFFIX):
                if scan_requeue(scan=scan):
                    report.requeued.append(str(scan.id))
                continue
            if scan_mark_failed(scan_id=scan.id, error_message=LOST_BEFORE_START_MESSAGE):
                report.failed.append(str(scan.id))
            continue
        started_at = scan.started_at or scan.created_at
        deadline = started_at + timedelta(seconds=job_timeout_for(scan.kind) + grace_seconds)
        if job_is_live and now < deadline:
            continue
        if now >= deadline:
            if scan_mark_failed(scan_id=scan.id, error_message=timeout_message(scan.kind)):
                report.failed.append(str(scan.id))
            continue
        # The job is gone or ended without finishing the row: its worker died under it.
        outcome = scan_retry_after_crash(scan_id=scan.id, job_id=scan.job_id)
        if outcome == CrashOutcome.REQUEUED:
            report.requeued.append(str(scan.id))
        elif outcome == CrashOutcome.FAILED:
            report.failed.append(str(scan.id))
    return report


@transaction.atomic
def scan_retry_after_crash(*, scan_id: uuid.UUID | str, job_id: str) -> CrashOutcome:
    """A processing scan whose worker died under job `job_id`: analyse it once more, or fail it after the second crash.

    A crash may be the machine's fault (a deploy, a node lost), so the user's scan is not lost to the first:
    it goes back to `queued` under a new job id and is enqueued once committed. A scan that has already had
    `MAX_ANALYSIS_ATTEMPTS` runs is failed with a reason that says it crashed twice (a file that kills the
    worker every time must not take down worker after worker). Both changes are conditional on the scan
    still processing that same job, so a scan that finished, or was retried already, is left alone.
    """
    still_crashed = Scan.objects.filter(pk=scan_id, status=Scan.Status.PROCESSING, job_id=job_id)
    scan = still_crashed.only("id", "kind", "attempts").first()
    if scan is None:
        return CrashOutcome.UNCHANGED
    if scan.attempts >= MAX_ANALYSIS_ATTEMPTS:
        failed = scan_mark_failed(scan_id=scan_id, error_message=WORKER_CRASHED_TWICE_MESSAGE, job_id=job_id)
        return CrashOutcome.FAILED if failed else CrashOutcome.UNCHANGED
    retry_job_id = retry_job_id_for(scan_id, attempts=scan.attempts)
    updated = still_crashed.filter(attempts=scan.attempts).update(
        status=Scan.Status.QUEUED,
        job_id=retry_job_id,
        started_at=None,
        progress={"stage": "queued again after a worker crash"},
    )
    if updated != 1:
        return CrashOutcome.UNCHANGED
    kind = scan.kind
    transaction.on_commit(lambda: scan_enqueue(scan_id=scan_id, job_id=retry_job_id, kind=kind))
    logger.warning("Scan %s re-queued as job %s: its worker died under job %s", scan_id, retry_job_id, job_id)
    return CrashOutcome.REQUEUED


@transaction.atomic
def scan_requeue(*, scan: Scan) -> bool:
    """Enqueue a never-started queued scan a second (and last) time under a new job id."""
    requeued_job_id = job_id_for(scan.id, requeued=True)
    updated = Scan.objects.filter(pk=scan.pk, status=Scan.Status.QUEUED, attempts=0, job_id=scan.job_id).update(
        job_id=requeued_job_id
    )
    if updated != 1:
        return False
    scan_id, kind = scan.id, scan.kind
    transaction.on_commit(lambda: scan_enqueue(scan_id=scan_id, job_id=requeued_job_id, kind=kind))
    return True


def _job_status(connection: redis.Redis, job_id: str) -> JobStatus | None:
    if not job_id:
        return None
    try:
        return Job.fetch(job_id, connection=connection).get_status(refresh=False)
    except NoSuchJobError:
        return None


# --- Scans of workers that died ------------------------------------------------------------------------


def scans_recover_abandoned(*, connection: redis.Redis) -> None:
    """Run RQ's abandoned-job handling on every scan queue now.

    A job whose execution heartbeat has expired (its worker died or stopped beating) is given to its failure
    callback, `scans.jobs.analyze_scan_on_failure`, which runs the scan once more (`scan_retry_after_crash`),
    and moved to RQ's failed registry. RQ's workers do this in their maintenance too, but only while one runs:
    the reconciler does it even when every worker is down.
    """
    for queue_name in scan_queue_names():
        StartedJobRegistry(queue_name, connection=connection).cleanup()


def scans_recover_orphaned(
    *, connection: redis.Redis, live_worker_names: set[str] | frozenset[str] = frozenset()
) -> dict[str, CrashOutcome]:
    """Recover every processing scan whose job's worker is dead; returns what happened to each, by scan id.

    A worker counts as dead when its Redis key is gone or records a death, when its last heartbeat is older
    than UNMASK_WORKER_HEARTBEAT_TTL, or when it ran on this host and its process no longer exists (seen at
    once, before the heartbeat expires). Workers in
    `live_worker_names` (the caller itself) are never judged. Each orphaned scan is re-queued once and
    failed after a second crash (`scan_retry_after_crash`). A scan whose job is gone altogether is left
    to `scans_reconcile`, which waits out a grace period for just-created rows. Every change is
    conditional, so a scan that finished meanwhile stays as it is.
    """
    outcomes: dict[str, CrashOutcome] = {}
    processing = Scan.objects.filter(status=Scan.Status.PROCESSING).exclude(job_id="").values_list("id", "job_id")
    for scan_id, job_id in processing.iterator():
        try:
            worker_name = Job.fetch(job_id, connection=connection).worker_name
        except NoSuchJobError:
            continue
        if not worker_name or worker_name in live_worker_names or _worker_alive(connection, worker_name):
            continue
        outcome = scan_retry_after_crash(scan_id=scan_id, job_id=job_id)
        if outcome != CrashOutcome.UNCHANGED:
            logger.warning("Scan %s %s: its worker %s died while analysing it", scan_id, outcome, worker_name)
            outcomes[str(scan_id)] = outcome
    return outcomes


def _worker_alive(connection: redis.Redis, worker_name: str) -> bool:
    details = {
        key.decode(): value.decode()
        for key, value in connection.hgetall(Worker.redis_worker_namespace_prefix + worker_name).items()
    }
    if not details or details.get("death") or not heartbeat_is_fresh(details.get("last_heartbeat")):
        return False
    if details.get("hostname") == socket.gethostname() and details.get("pid", "").isdigit():
        return _process_exists(int(details["pid"]))
    # A worker on another host: its heartbeat is fresh.
    return True


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # It exists, owned by another user.
        return True
    return True
