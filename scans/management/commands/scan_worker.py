"""`manage.py scan_worker [QUEUE ...]`: one RQ worker for scans, listening on every queue the settings route to."""

from __future__ import annotations

from argparse import ArgumentParser

from django.core.management import call_command
from django.core.management.base import BaseCommand

from scans.queues import scan_queue_names

WORKER_CLASS = "scans.worker.ScanWorker"


class Command(BaseCommand):
    help = (
        "Start one scan worker (scans.worker.ScanWorker, with RQ's scheduler). With no QUEUE it serves every "
        "queue the settings send analyses to: UNMASK_IMAGE_QUEUE and UNMASK_VIDEO_QUEUE (webhook deliveries have "
        "their own workers, `manage.py webhook_worker`). Name queues to dedicate it, e.g. `scan_worker videos` "
        "on a GPU machine."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("queues", nargs="*", metavar="QUEUE", help="queues to serve, in priority order")
        parser.add_argument("--burst", action="store_true", help="stop once the queues are empty")
        parser.add_argument("--name", help="worker name (default: RQ's host.pid)")

    def handle(self, *args: object, queues: list[str], burst: bool, name: str | None, **options: object) -> None:
        # RQ serves a worker's queues in the order given: the main queue's short image jobs first, so they are
        # not held up behind a backlog of videos on a worker that serves both.
        queue_names = queues or scan_queue_names()
        self.stdout.write(f"Scan worker serving: {', '.join(queue_names)}")
        extra = {"name": name} if name else {}
        call_command("rqworker", *queue_names, worker_class=WORKER_CLASS, with_scheduler=True, burst=burst, **extra)
