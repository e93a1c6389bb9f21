"""The RQ worker class that delivers webhooks (started by `manage.py webhook_worker`, a pool of them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import close_old_connections, connection

from scans.heartbeats import HeartbeatWorker

if TYPE_CHECKING:
    from rq.job import Job
    from rq.queue import Queue


class WebhookWorker(HeartbeatWorker):
    """Runs each delivery in the worker process itself, keeping its database connection between deliveries.

    A delivery is one short HTTP call: forking a work horse per job (RQ's default `Worker`) would cost a fork
    and a new database connection each time for nothing. Deliveries run side by side in the processes of the
    pool `webhook_worker` starts; RQ's job timeout (SIGALRM in this process) still stops a stuck one. Its
    heartbeats are those of the scan workers (`HeartbeatWorker`), so a delivery whose worker died is retried
    by RQ as soon as its heartbeat expires.
    """

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run one delivery between two checks of the database connection (one the database dropped while the
        worker sat idle would fail the next delivery)."""
        _close_stale_database_connections()
        try:
            super().execute_job(job, queue)
        finally:
            _close_stale_database_connections()


def _close_stale_database_connections() -> None:
    # Inside a transaction (a test running the worker in-process) the connection is in use and stays open.
    if not connection.in_atomic_block:
        close_old_connections()
