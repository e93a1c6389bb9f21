"""`manage.py reconcile_scans [--loop [SECONDS]]`: finish scans whose analysis job is gone."""

from __future__ import annotations

import time
from argparse import ArgumentParser

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections

from scans.recovery import scans_reconcile

# What `--loop` with no number stands for: UNMASK_RECONCILE_INTERVAL.
_SETTINGS_INTERVAL = -1.0


class Command(BaseCommand):
    help = (
        "Finish scans whose RQ job is gone: run once more a scan whose worker died (its heartbeat expired), "
        "re-enqueue a queued scan that never started (once), mark failed a scan whose job died twice or ran "
        "past its timeout. Done and failed scans are never touched."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--loop",
            type=float,
            nargs="?",
            const=_SETTINGS_INTERVAL,
            metavar="SECONDS",
            help="keep running, one pass every SECONDS (default UNMASK_RECONCILE_INTERVAL; stop with Ctrl-C); "
            "without --loop: one pass",
        )
        parser.add_argument(
            "--grace",
            type=int,
            default=60,
            metavar="SECONDS",
            help="leave scans younger than this alone, and allow this much past a job's timeout (default 60)",
        )

    def handle(self, *args: object, loop: float | None = None, grace: int = 60, **options: object) -> None:
        if loop == _SETTINGS_INTERVAL:
            loop = settings.UNMASK_RECONCILE_INTERVAL
        if loop is not None and loop <= 0:
            raise CommandError("--loop needs a positive number of seconds")
        if grace < 0:
            raise CommandError("--grace cannot be negative")
        try:
            while True:
                self._reconcile_once(grace=grace, keep_going=loop is not None)
                if loop is None:
                    return
                time.sleep(loop)
                # The database may have dropped the connection while this process slept.
                close_old_connections()
        except KeyboardInterrupt:
            self.stdout.write("stopped")

    def _reconcile_once(self, *, grace: int, keep_going: bool) -> None:
        try:
            report = scans_reconcile(grace_seconds=grace)
        except (DatabaseError, redis.RedisError) as exc:
            if not keep_going:
                raise CommandError(f"reconciliation failed: {exc}") from exc
            # A looping reconciler outlives a database or Redis restart; the next pass tries again.
            self.stderr.write(f"reconciliation pass failed, will retry: {exc}")
            return
        self.stdout.write(
            f"checked {report.checked} unfinished scan(s): "
            f"{len(report.requeued)} re-enqueued, {len(report.failed)} marked failed"
        )
        for scan_id in report.requeued:
            self.stdout.write(f"  re-enqueued {scan_id}")
        for scan_id in report.failed:
            self.stdout.write(f"  failed {scan_id}")
