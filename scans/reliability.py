"""Worker crash recovery and the queue Redis's eviction policy.

`ScanWorker` runs jobs in its own process (see scans/worker.py), so a worker killed mid-scan (SIGKILL, out
of memory) leaves its scan `processing` and its job in RQ's started registry, with the dead worker's key
kept alive for up to the job's timeout. `scans_recover_orphaned` finds such scans as soon as another worker
starts or does its periodic maintenance, instead of waiting for the timeout: each is queued for one more
run, or failed if it has crashed a worker before (`scan_retry_after_crash`).

RQ keeps jobs, queues and registries as ordinary Redis keys: under any eviction policy other than
`noeviction`, a Redis that fills up silently drops some, and scans wait for jobs that no longer exist.
`redis_eviction_warning` says so, for the worker's start-up log and the health API.
"""

from __future__ import annotations

import logging
import os
import socket

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.worker import Worker

from scans.models import Scan
from scans.services import CrashOutcome, scan_retry_after_crash

logger = logging.getLogger(__name__)

REQUIRED_EVICTION_POLICY = "noeviction"


def scans_recover_orphaned(
    *, connection: redis.Redis, live_worker_names: set[str] | frozenset[str] = frozenset()
) -> dict[str, CrashOutcome]:
    """Recover every processing scan whose job's worker is dead; returns what happened to each, by scan id.

    A worker counts as dead when its Redis key is gone or records a death, or when it ran on this host and
    its process no longer exists (the key of a SIGKILLed worker outlives it). Workers in
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
    if not details or details.get("death"):
        return False
    if details.get("hostname") == socket.gethostname() and details.get("pid", "").isdigit():
        return _process_exists(int(details["pid"]))
    # A worker on another host: trust its key, which expires once its heartbeat stops.
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


def redis_eviction_policy(connection: redis.Redis) -> str | None:
    """Redis's `maxmemory-policy`, or None where CONFIG is not allowed (some managed services disable it)."""
    try:
        return connection.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.ResponseError:
        return None


def redis_eviction_warning(connection: redis.Redis) -> str | None:
    """A warning when the queue's Redis may evict keys (any policy but `noeviction`); None when it is safe."""
    policy = redis_eviction_policy(connection)
    if policy == REQUIRED_EVICTION_POLICY:
        return None
    if policy is None:
        return (
            "Could not read Redis's maxmemory-policy; make sure it is `noeviction`, "
            "or queued jobs may be dropped when Redis is full."
        )
    return (
        f"Redis's maxmemory-policy is `{policy}`: queued jobs may be dropped when Redis is full. "
        "Set `maxmemory-policy noeviction`."
    )
