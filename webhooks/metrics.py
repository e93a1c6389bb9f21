"""The webhooks' share of the Prometheus metrics (registered with `scans.metrics` by `webhooks.apps`)."""

from __future__ import annotations

from django.db.models import Count

from scans.metrics import MetricFamily
from webhooks.models import WebhookDelivery


def webhook_metrics() -> list[MetricFamily]:
    """Logged delivery attempts by outcome."""
    family = MetricFamily("unmask_webhook_deliveries", "gauge", "Logged webhook delivery attempts by outcome.")
    counts = dict(WebhookDelivery.objects.values_list("succeeded").annotate(total=Count("id")).order_by())
    family.add(counts.get(True, 0), outcome="delivered")
    family.add(counts.get(False, 0), outcome="failed")
    return [family]
