"""The webhooks app: users' endpoints receive each finished scan, and each reviewer label, as a signed POST."""

from __future__ import annotations

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Listens for `scans.signals.scan_finished` and `scan_reviewed` and schedules the deliveries they call for;
    adds its delivery counts to the platform's metrics."""

    name = "webhooks"

    def ready(self) -> None:
        # Imported here: app modules that touch models may only load once the app registry is ready.
        from scans.metrics import metric_source_register
        from scans.signals import scan_finished, scan_reviewed
        from webhooks.delivery import EVENT_SCAN_REVIEWED
        from webhooks.metrics import webhook_metrics
        from webhooks.services import webhooks_schedule_for_scan

        metric_source_register(webhook_metrics)

        def schedule(sender: object, *, scan_id: object, **kwargs: object) -> None:
            webhooks_schedule_for_scan(scan_id=scan_id)

        def schedule_reviewed(sender: object, *, scan_id: object, **kwargs: object) -> None:
            webhooks_schedule_for_scan(scan_id=scan_id, event=EVENT_SCAN_REVIEWED)

        scan_finished.connect(schedule, weak=False, dispatch_uid="webhooks.schedule_for_finished_scan")
        scan_reviewed.connect(schedule_reviewed, weak=False, dispatch_uid="webhooks.schedule_for_reviewed_scan")
