"""The webhooks app: users' endpoints receive each finished scan as a signed POST."""

from __future__ import annotations

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Listens for `scans.signals.scan_finished` and schedules the deliveries it calls for; adds its delivery
    counts to the platform's metrics."""

    name = "webhooks"

    def ready(self) -> None:
        # Imported here: app modules that touch models may only load once the app registry is ready.
        from scans.metrics import metric_source_register
        from scans.signals import scan_finished
        from webhooks.metrics import webhook_metrics
        from webhooks.services import webhooks_schedule_for_scan

        metric_source_register(webhook_metrics)

        def schedule(sender: object, *, scan_id: object, **kwargs: object) -> None:
            webhooks_schedule_for_scan(scan_id=scan_id)

        scan_finished.connect(schedule, weak=False, dispatch_uid="webhooks.schedule_for_finished_scan")
