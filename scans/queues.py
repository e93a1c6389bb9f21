"""Queue plumbing for scans: which RQ queue a scan's job goes to, its id and timeout, putting it there, and
whether the queue's Redis can be trusted to keep it.

Nothing here touches a Scan row: `scans.services.scan_enqueue` decides what a refused enqueue means for one.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import django_rq
import redis
from django.conf import settings
from django_rq.connection_utils import get_redis_connection
from rq.callbacks import Callback

from scans.models import Scan

if TYPE_CHECKING:
    from django_rq.queues import DjangoRQ

SCAN_QUEUE = "scans"
# Referenced by dotted path so that enqueueing does not import the job module (which imports the services).
ANALYZE_JOB = "scans.jobs.analyze_scan"
ANALYZE_FAILURE_CALLBACK = "scans.jobs.analyze_scan_on_failure"
# A job that never started is re-enqueued once by the reconciler; its id says so, so it happens only once.
REQUEUED_JOB_SUFFIX = "-requeued"
# A job whose worker crashed mid-analysis is run once more under `<job id>-retry<attempts so far>`.
RETRY_JOB_SUFFIX = "-retry"
REQUIRED_EVICTION_POLICY = "noeviction"


def job_id_for(scan_id: uuid.UUID | str, *, requeued: bool = False) -> str:
    """The RQ job id of a scan's analysis (a re-enqueued one says so)."""
    return f"scan-{scan_id}{REQUEUED_JOB_SUFFIX if requeued else ''}"


def retry_job_id_for(scan_id: uuid.UUID | str, *, attempts: int) -> str:
    """The job id of the run after a crash, numbered by the runs so far (each retry gets a fresh id)."""
    return f"{job_id_for(scan_id)}{RETRY_JOB_SUFFIX}{attempts}"


def job_timeout_for(kind: str) -> int:
    """Seconds a job analysing a scan of `kind` may run before RQ stops it."""
    return settings.UNMASK_VIDEO_JOB_TIMEOUT if kind == Scan.Kind.VIDEO else settings.UNMASK_IMAGE_JOB_TIMEOUT


def timeout_message(kind: str) -> str:
    """What a scan whose analysis ran past its job timeout tells the user."""
    return (
        f"The analysis did not finish within {job_timeout_for(kind)} seconds and was stopped. "
        "Please try a shorter or smaller file."
    )


def scan_queue(kind: str | None = None) -> DjangoRQ:
    """The RQ queue of analysis jobs of `kind` (the main scan queue when None); enqueues immediately (callers
    decide when, via on_commit)."""
    name = scan_queue_name(kind)
    return django_rq.get_queue(name, commit_mode="auto", connection=_queue_redis(name))


def scan_queue_name(kind: str | None) -> str:
    """UNMASK_IMAGE_QUEUE or UNMASK_VIDEO_QUEUE (both "scans" by default): videos can go to GPU workers."""
    if kind == Scan.Kind.VIDEO:
        return settings.UNMASK_VIDEO_QUEUE
    if kind == Scan.Kind.IMAGE:
        return settings.UNMASK_IMAGE_QUEUE
    return SCAN_QUEUE


def scan_queue_names() -> list[str]:
    """Every queue scans are analysed from, the main one first: what a plain `scan_worker` serves, in that
    priority order, and what health counts workers on."""
    return list(dict.fromkeys([SCAN_QUEUE, settings.UNMASK_IMAGE_QUEUE, settings.UNMASK_VIDEO_QUEUE]))


def job_queue_names() -> list[str]:
    """Every queue the platform puts jobs on: the scan queues, then webhook deliveries (what the metrics
    report)."""
    return list(dict.fromkeys([*scan_queue_names(), settings.UNMASK_WEBHOOK_QUEUE]))


def _queue_redis(name: str) -> redis.Redis:
    """Queue `name`'s Redis client, one per process and configuration, so its connection pool is reused.

    django-rq builds a new client, and so a new connection pool, on every `get_queue` call: each upload
    then paid for a fresh TCP connection and handshake. The cache is keyed by the queue's settings, so a
    changed RQ_QUEUES (tests) gets its own client; redis-py's pool resets itself after a fork.
    """
    config = settings.RQ_QUEUES[name]
    key = repr(sorted(config.items()))
    client = _QUEUE_REDIS_CLIENTS.get(key)
    if client is None:
        client = _QUEUE_REDIS_CLIENTS.setdefault(key, get_redis_connection(config))
    return client


_QUEUE_REDIS_CLIENTS: dict[str, redis.Redis] = {}


def analysis_enqueue(*, scan_id: uuid.UUID | str, job_id: str, kind: str) -> None:
    """Put the analysis job of a scan on its kind's queue now; raises redis.RedisError when Redis refuses."""
    scan_queue(kind).enqueue(
        ANALYZE_JOB,
        str(scan_id),
        job_id=job_id,
        job_timeout=job_timeout_for(kind),
        on_failure=Callback(ANALYZE_FAILURE_CALLBACK),
        description=f"analyse {kind} scan {scan_id}",
        result_ttl=24 * 3600,
        failure_ttl=7 * 24 * 3600,
    )


def redis_eviction_policy(connection: redis.Redis) -> str | None:
    """Redis's `maxmemory-policy`, or None where CONFIG is not allowed (some managed services disable it)."""
    try:
        return connection.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.ResponseError:
        return None


def redis_eviction_warning(connection: redis.Redis) -> str | None:
    """A warning when the queue's Redis may evict keys (any policy but `noeviction`); None when it is safe.

    RQ keeps jobs, queues and registries as ordinary Redis keys: under any other policy, a Redis that fills
    up silently drops some, and scans wait for jobs that no longer exist.
    """
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


def fetch_enqueue(*, scan_id: uuid.UUID | str, job: str) -> None:
    """Put the download of a scan by URL on the main scan queue now (the worker then queues its analysis); raises
    redis.RedisError when Redis refuses. Its timeout leaves the download its own time limit and a margin."""
    scan_queue().enqueue(
        job,
        str(scan_id),
        job_id=f"fetch-{scan_id}",
        job_timeout=int(settings.UNMASK_URL_SCAN_TIMEOUT) + 60,
        description=f"download scan {scan_id}",
        result_ttl=24 * 3600,
        failure_ttl=7 * 24 * 3600,
    )
