"""RQ entry point for webhooks: deliver one finished scan to one endpoint, raising so that RQ retries."""

from __future__ import annotations

import logging

from scans.log_context import with_scan_log_context
from scans.models import Scan
from webhooks.delivery import EVENT_SCAN_FINISHED, EVENTS
from webhooks.models import WebhookEndpoint
from webhooks.services import webhook_delivery_attempt

logger = logging.getLogger(__name__)


class WebhookDeliveryFailed(Exception):
    """The receiver did not accept a delivery; raising it makes RQ retry the job after the next interval."""


@with_scan_log_context
def webhook_deliver(scan_id: str, endpoint_id: int, event: str = EVENT_SCAN_FINISHED) -> str:
    """POST the scan for `event` (finished, or reviewed) to the endpoint and log the attempt; raise so RQ retries
    when it failed.

    Takes ids and reloads both rows: a deleted scan or endpoint, or a deactivated or paused endpoint (its
    circuit breaker tripped, maybe while this job waited to be retried), ends the job ("skipped"). Returns
    "delivered" when the receiver answered 2xx.
    """
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id, is_active=True, paused_at__isnull=True).first()
    scan = Scan.objects.filter(pk=scan_id).select_related("image_model_version", "video_model_version").first()
    if endpoint is None or scan is None:
        logger.info(
            "Webhook for scan %s to endpoint %s skipped: scan or endpoint is gone, or the endpoint is paused",
            scan_id,
            endpoint_id,
        )
        return "skipped"
    if event not in EVENTS:
        logger.warning("Webhook for scan %s skipped: unknown event %r", scan_id, event)
        return "skipped"
    delivery = webhook_delivery_attempt(scan=scan, endpoint=endpoint, event=event)
    if not delivery.succeeded:
        logger.warning(
            "Webhook for scan %s to %s failed (attempt %d): %s", scan_id, endpoint.url, delivery.attempt, delivery.error
        )
        raise WebhookDeliveryFailed(delivery.error)
    logger.info("Webhook for scan %s delivered to %s (attempt %d)", scan_id, endpoint.url, delivery.attempt)
    return "delivered"
