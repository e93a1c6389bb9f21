"""Workers that keep RQ's heartbeats fresh while they work, and who counts as alive by them.

RQ's `SimpleWorker` (which runs jobs in its own process, see `scans.worker`) beats only between jobs, and sets its
Redis key, and its job's entry in the started registry, to expire after the job's whole timeout plus a minute: a
worker SIGKILLed during a 900 s video job looked alive for up to 16 minutes. `HeartbeatWorker` beats every
UNMASK_WORKER_HEARTBEAT_INTERVAL seconds, idle or busy (a thread beats while a job runs), and lets each beat
expire after UNMASK_WORKER_HEARTBEAT_TTL seconds. A worker that dies therefore drops out of the health count
within that TTL, and its job's execution expires as fast, so RQ's own abandoned-job handling
(`StartedJobRegistry.cleanup`, run by the reconciler and by every worker's maintenance) hands the job to its
failure callback, which runs the scan once more (`scans.jobs.analyze_scan_on_failure`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import redis
from django.conf import settings
from rq import worker_registration
from rq.utils import now, utcparse
from rq.worker import SimpleWorker, WorkerStatus

if TYPE_CHECKING:
    from redis.client import Pipeline
    from rq.executions import Execution
    from rq.job import Job
    from rq.queue import Queue

logger = logging.getLogger(__name__)


def heartbeat_ttl() -> int:
    """Seconds after its last heartbeat that a worker, and the job it runs, count as dead."""
    return max(2, int(settings.UNMASK_WORKER_HEARTBEAT_TTL))


def heartbeat_interval() -> float:
    """Seconds between two heartbeats: well inside the TTL, so one late beat never makes a live worker look dead."""
    return max(0.2, min(float(settings.UNMASK_WORKER_HEARTBEAT_INTERVAL), heartbeat_ttl() / 3))


def heartbeat_is_fresh(last_heartbeat: bytes | str | None, *, at: datetime | None = None) -> bool:
    """Whether a worker whose hash records `last_heartbeat` (RQ's UTC timestamp) has beaten within the TTL."""
    if not last_heartbeat:
        return False
    try:
        beaten_at = utcparse(last_heartbeat.decode() if isinstance(last_heartbeat, bytes) else last_heartbeat)
    except ValueError:
        return False
    return (at or now()) - beaten_at <= timedelta(seconds=heartbeat_ttl())


def live_worker_count(connection: redis.Redis, *queue_names: str) -> int:
    """Workers registered on any of the queues (each counted once) whose last heartbeat is fresh: a killed
    worker stays registered, and its key may outlive it (RQ's own count includes both)."""
    worker_keys = list(
        set().union(*(connection.smembers(worker_registration.WORKERS_BY_QUEUE_KEY % name) for name in queue_names))
    )
    if not worker_keys:
        return 0
    with connection.pipeline() as pipeline:
        for worker_key in worker_keys:
            pipeline.hget(worker_key, "last_heartbeat")
        return sum(heartbeat_is_fresh(last_heartbeat) for last_heartbeat in pipeline.execute())


class HeartbeatWorker(SimpleWorker):
    """A `SimpleWorker` whose heartbeats are frequent and short-lived, also while a job runs (see the module)."""

    def register_birth(self) -> None:
        """Register, then let the key expire after the heartbeat TTL (RQ gives a new worker seven minutes)."""
        super().register_birth()
        self.connection.expire(self.key, heartbeat_ttl())

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's heartbeat, always with the short TTL (RQ asks for the job's timeout plus a minute)."""
        super().heartbeat(heartbeat_ttl(), pipeline=pipeline)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """How long the job's execution stays in the started registry without a beat: the heartbeat TTL."""
        return heartbeat_ttl()

    @property
    def dequeue_timeout(self) -> int:
        """Wait for a job at most one heartbeat interval, so that an idle worker beats that often."""
        return max(1, round(heartbeat_interval()))

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job in this process, as `SimpleWorker` does, while a thread keeps its heartbeats fresh."""
        execution = self.prepare_execution(job)
        with self._beating_while(job, execution):
            self.perform_job(job, queue, execution)
        self.set_state(WorkerStatus.IDLE)

    @contextmanager
    def _beating_while(self, job: Job, execution: Execution) -> Iterator[None]:
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(heartbeat_interval()):
                try:
                    with self.connection.pipeline() as pipeline:
                        self.heartbeat(pipeline=pipeline)
                        # xx: an execution that has just finished is not put back.
                        execution.heartbeat(job.started_job_registry, heartbeat_ttl(), pipeline=pipeline)
                        pipeline.execute()
                except redis.RedisError:
                    logger.warning("Worker %s: heartbeat failed; will retry", self.name, exc_info=True)

        beater = threading.Thread(target=beat, name=f"heartbeat-{job.id}", daemon=True)
        beater.start()
        try:
            yield
        finally:
            stop.set()
            beater.join(timeout=5)
