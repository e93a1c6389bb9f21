"""The RQ worker class that runs scan analyses.

Start it with `python manage.py scan_worker` (see scans/management/commands/scan_worker.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import close_old_connections, connection
from rq.utils import now

from ml.runtime import configure_tensorflow
from scans.analyzers import NoActiveModel, analyzer_for_active_versions
from scans.heartbeats import HeartbeatWorker
from scans.queues import redis_eviction_warning
from scans.recovery import scans_recover_orphaned

if TYPE_CHECKING:
    from rq.job import Job
    from rq.queue import Queue

logger = logging.getLogger(__name__)

# How often an idle or busy-between-jobs worker looks for scans left behind by a worker that died.
ORPHAN_CHECK_INTERVAL_S = 20


class ScanWorker(HeartbeatWorker):
    """Runs every job in the worker process itself, with the models loaded once at start-up.

    RQ's default `Worker` forks a child ("work horse") per job. That is wrong here twice over:
    TensorFlow is not fork-safe (a child forked from a process whose TensorFlow runtime has started its
    thread pools can deadlock or crash), and a fresh child would reload MTCNN and the Keras models for
    every job, seconds each time. `SimpleWorker` runs the job in-process, so the `Analyzer` built here
    at start-up (see `scans.analyzers`) is reused by every job. Job timeouts still apply: RQ enforces
    them with SIGALRM in this process. The price of no fork is that a crash (e.g. out of memory) takes
    the worker down with its job; the supervisor restarts it, and the next worker to start or do its
    maintenance, or the reconciler once the dead worker's heartbeat has expired (`HeartbeatWorker`), runs
    the scan once more (a second crash fails it, see scans/recovery.py).
    """

    def bootstrap(self, *args: object, **kwargs: object) -> None:
        """Configure TensorFlow and load the active models before registering as a live worker.

        Warming up first means a worker only counts as live (health API) once it can analyse at once.
        Without an active model it still starts: scans then fail with a clear reason instead of waiting.
        """
        configure_tensorflow(threads=settings.UNMASK_TF_THREADS)
        try:
            analyzer_for_active_versions()
        except NoActiveModel:
            logger.warning("No active image model: register one (`manage.py register_shipped_models`)")
        except Exception:
            logger.exception("Could not load the active models; scans will fail until this is fixed")
        finally:
            _close_stale_database_connections()
        super().bootstrap(*args, **kwargs)
        eviction_warning = redis_eviction_warning(self.connection)
        if eviction_warning:
            logger.warning(eviction_warning)
        self._recover_orphaned_scans()

    @property
    def should_run_maintenance_tasks(self) -> bool:
        """RQ's registry cleaning every 10 minutes is too slow to notice a crashed worker's scan."""
        if self.last_cleaned_at is None:
            return True
        return (now() - self.last_cleaned_at).total_seconds() >= ORPHAN_CHECK_INTERVAL_S

    def run_maintenance_tasks(self) -> None:
        """RQ's registry cleaning, then recover (retry once, else fail) the scans of workers that died mid-job."""
        super().run_maintenance_tasks()
        self._recover_orphaned_scans()

    def _recover_orphaned_scans(self) -> None:
        try:
            scans_recover_orphaned(connection=self.connection, live_worker_names={self.name})
        except Exception:
            logger.exception("Could not check for scans orphaned by a dead worker; will retry")
        finally:
            _close_stale_database_connections()

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run one job between two checks of the database connection.

        A long-lived worker keeps its connection across jobs; one the database dropped while the worker
        sat idle would fail the next job, so stale connections are closed before and after each.
        """
        _close_stale_database_connections()
        try:
            super().execute_job(job, queue)
        finally:
            _close_stale_database_connections()


def _close_stale_database_connections() -> None:
    # Inside a transaction (a test running the worker in-process) the connection is in use and stays open.
    if not connection.in_atomic_block:
        close_old_connections()
