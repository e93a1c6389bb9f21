"""`manage.py webhook_worker [--processes N]`: a pool of RQ workers delivering webhooks from their own queue."""

from __future__ import annotations

from argparse import ArgumentParser

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

WORKER_CLASS = "webhooks.worker.WebhookWorker"


class Command(BaseCommand):
    help = (
        "Deliver webhooks: a pool of UNMASK_WEBHOOK_WORKERS RQ worker processes (webhooks.worker.WebhookWorker) on "
        "UNMASK_WEBHOOK_QUEUE, which respawns any that dies; each runs RQ's scheduler, which one of them takes "
        "for the retries. Scan workers never serve this queue, so a slow receiver cannot hold up a scan."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--processes",
            type=int,
            default=None,
            help="deliveries in flight at once (default: UNMASK_WEBHOOK_WORKERS)",
        )
        parser.add_argument("--burst", action="store_true", help="stop once the queue is empty")

    def handle(self, *args: object, processes: int | None, burst: bool, **options: object) -> None:
        processes = settings.UNMASK_WEBHOOK_WORKERS if processes is None else processes
        if processes < 1:
            raise CommandError("--processes needs at least one process")
        queue_name = settings.UNMASK_WEBHOOK_QUEUE
        self.stdout.write(f"Webhook workers: {processes} on queue {queue_name}")
        call_command("rqworker-pool", queue_name, num_workers=processes, worker_class=WORKER_CLASS, burst=burst)
