"""Writes on webhooks: register and remove endpoints, schedule the deliveries of a finished scan, and make one
delivery attempt with its log row."""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
import uuid
from typing import TYPE_CHECKING

import django_rq
import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rq import Retry
from rq.rate_limit import RateLimit

from scans.destinations import DestinationRefused, DestinationUnresolved, destination_resolve
from scans.models import Scan
from webhooks.delivery import (
    EVENT_SCAN_FINISHED,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    USER_AGENT,
    post,
    webhook_payload,
    webhook_signature,
)
from webhooks.models import WebhookDelivery, WebhookEndpoint

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)

# Referenced by dotted path so that scheduling does not import the job module.
DELIVER_JOB = "webhooks.jobs.webhook_deliver"
_url_validator = URLValidator(schemes=["http", "https"])


class WebhookRejected(Exception):
    """An endpoint that cannot be registered; `message` is shown to the user as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@transaction.atomic
def webhook_endpoint_create(*, owner: AbstractBaseUser, url: str) -> WebhookEndpoint:
    """Register `url` (http or https only) for the owner's finished scans, with a newly generated secret.

    Raises `WebhookRejected` for another scheme, a malformed URL or port, credentials in the URL, a host that is
    or resolves to an address webhooks may not call (`scans.destinations`), a URL already registered, or one
    too many. A host name that does not resolve yet is accepted: every delivery resolves and checks it again.
    """
    url = (url or "").strip()
    try:
        _url_validator(url)
    except ValidationError:
        raise WebhookRejected("Enter a full http:// or https:// URL.") from None
    if urllib.parse.urlsplit(url).username is not None:
        raise WebhookRejected("Put credentials in the receiver's own check of the signature, not in the URL.")
    try:
        destination_resolve(url, allow_private=settings.UNMASK_WEBHOOK_ALLOW_PRIVATE)
    except DestinationUnresolved:
        pass
    except DestinationRefused as exc:
        raise WebhookRejected(exc.message) from None
    # Locks the owner's endpoints so two concurrent requests cannot both pass the limit.
    existing = list(WebhookEndpoint.objects.select_for_update().filter(owner=owner))
    if len(existing) >= settings.UNMASK_WEBHOOK_MAX_ENDPOINTS:
        raise WebhookRejected(f"You can register at most {settings.UNMASK_WEBHOOK_MAX_ENDPOINTS} webhooks.")
    if any(endpoint.url == url for endpoint in existing):
        raise WebhookRejected("This URL is already registered.")
    try:
        with transaction.atomic():
            return WebhookEndpoint.objects.create(owner=owner, url=url)
    except IntegrityError:
        raise WebhookRejected("This URL is already registered.") from None


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Remove the endpoint and its delivery log; deliveries still queued for it find no row and stop."""
    endpoint.delete()


def webhook_endpoint_resume(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Lift the circuit breaker: the endpoint gets the deliveries of scans that finish from now on (those that
    finished while it was paused are not sent again), with its count of failures back at zero."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(paused_at=None, consecutive_failures=0)
    endpoint.refresh_from_db(fields=["paused_at", "consecutive_failures"])
    return endpoint


def webhooks_schedule_for_scan(*, scan_id: uuid.UUID | str, event: str = EVENT_SCAN_FINISHED) -> int:
    """Enqueue one delivery job per active, unpaused endpoint of the scan's owner; returns how many.

    Called once a scan's move to done or failed is committed (`scans.signals.scan_finished`), and with
    `event=scan.reviewed` once a reviewer label is (`scans.signals.scan_reviewed`: every label is delivered). A Redis outage
    loses these deliveries (logged) but never the scan's own state, which is already committed. The jobs go to
    the webhook queue, which no scan worker serves, and at most UNMASK_WEBHOOK_CONCURRENCY_PER_USER of one
    user's deliveries run at once (RQ holds the others back until one finishes), so one user's slow receivers
    can tie up that many webhook workers, never all of them.
    """
    owner_id = Scan.objects.filter(pk=scan_id).values_list("owner_id", flat=True).first()
    if owner_id is None:
        return 0
    endpoint_ids = list(
        WebhookEndpoint.objects.filter(owner_id=owner_id, is_active=True, paused_at__isnull=True).values_list(
            "pk", flat=True
        )
    )
    if not endpoint_ids:
        return 0
    intervals = list(settings.UNMASK_WEBHOOK_RETRY_INTERVALS)
    concurrency = settings.UNMASK_WEBHOOK_CONCURRENCY_PER_USER
    rate_limit = RateLimit(key=f"unmask-webhooks-user-{owner_id}", concurrency=concurrency) if concurrency > 0 else None
    queue = django_rq.get_queue(settings.UNMASK_WEBHOOK_QUEUE, commit_mode="auto")
    scheduled = 0
    # A scan finishes once (one job id per endpoint makes a duplicate signal harmless); it may be labelled often.
    label_suffix = "" if event == EVENT_SCAN_FINISHED else f"-reviewed-{uuid.uuid4().hex[:12]}"
    event_args = () if event == EVENT_SCAN_FINISHED else (event,)
    for endpoint_id in endpoint_ids:
        try:
            queue.enqueue(
                DELIVER_JOB,
                str(scan_id),
                endpoint_id,
                *event_args,
                job_id=f"webhook-{scan_id}-{endpoint_id}{label_suffix}",
                job_timeout=webhook_job_timeout(),
                retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
                rate_limit=rate_limit,
                description=f"webhook {event} for scan {scan_id} to endpoint {endpoint_id}",
                result_ttl=24 * 3600,
                failure_ttl=7 * 24 * 3600,
            )
            scheduled += 1
        except redis.RedisError:
            logger.exception("Could not enqueue the webhook for scan %s to endpoint %s", scan_id, endpoint_id)
    return scheduled


def webhook_job_timeout() -> int:
    """Seconds a delivery job may run: the socket timeout bounds the connect and each read, this the whole call
    (a receiver that answers a byte at a time cannot hold a webhook worker longer)."""
    return int(2 * settings.UNMASK_WEBHOOK_TIMEOUT) + 10


def webhook_delivery_attempt(
    *, scan: Scan, endpoint: WebhookEndpoint, event: str = EVENT_SCAN_FINISHED
) -> WebhookDelivery:
    """POST the scan for `event`, signed, to the endpoint once, and log the attempt (numbered per scan, endpoint
    and event)."""
    attempt = WebhookDelivery.objects.filter(endpoint=endpoint, scan_reference=scan.pk, event=event).count() + 1
    body = json.dumps(webhook_payload(scan=scan, event=event), separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Unmask-Event": event,
        "X-Unmask-Delivery": str(uuid.uuid4()),
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: webhook_signature(secret=endpoint.secret, timestamp=timestamp, body=body),
    }
    started = time.monotonic()
    status_code, error = post(endpoint.url, body=body, headers=headers)
    succeeded = status_code is not None and 200 <= status_code < 300
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        scan=scan,
        scan_reference=scan.pk,
        event=event,
        attempt=attempt,
        succeeded=succeeded,
        status_code=status_code,
        error="" if succeeded else error,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    webhook_endpoint_record_outcome(endpoint=endpoint, succeeded=succeeded)
    return delivery


def webhook_endpoint_record_outcome(*, endpoint: WebhookEndpoint, succeeded: bool) -> bool:
    """Count a delivery attempt for the circuit breaker; returns True when this failure paused the endpoint.

    A success sets the count of consecutive failures back to zero; a failure adds one, and the attempt that
    reaches UNMASK_WEBHOOK_PAUSE_AFTER_FAILURES pauses the endpoint (logged). Both are single UPDATEs, so
    deliveries finishing at the same time in several workers count exactly.
    """
    rows = WebhookEndpoint.objects.filter(pk=endpoint.pk)
    if succeeded:
        rows.exclude(consecutive_failures=0).update(consecutive_failures=0)
        return False
    rows.update(consecutive_failures=F("consecutive_failures") + 1)
    threshold = settings.UNMASK_WEBHOOK_PAUSE_AFTER_FAILURES
    if threshold <= 0:
        return False
    paused = rows.filter(paused_at__isnull=True, consecutive_failures__gte=threshold).update(paused_at=timezone.now())
    if paused:
        logger.warning(
            "Webhook endpoint %s (%s) of user %s paused after %d failed deliveries in a row",
            endpoint.pk,
            endpoint.url,
            endpoint.owner_id,
            threshold,
        )
    return bool(paused)
