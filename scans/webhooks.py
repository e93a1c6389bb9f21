"""Webhooks: a user's endpoints receive each finished scan as a signed JSON POST, retried with back-off.

Services (`webhook_endpoint_create`, `webhook_endpoint_delete`), selectors (`webhook_endpoint_list_for_user`,
`webhook_delivery_list_for_user`), the hook `webhooks_schedule_for_scan` (run on commit by the scan services
when a scan reaches done or failed) and the RQ job `webhook_deliver`.

Signing: `X-Unmask-Signature: sha256=<hex>` is HMAC-SHA256 with the endpoint's secret over
`"<X-Unmask-Timestamp>." + body`; the timestamp (Unix seconds) is signed too so a receiver can refuse replays.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import TYPE_CHECKING, Any

import django_rq
import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from rq import Retry

from scans.log_context import with_scan_log_context
from scans.models import Scan, WebhookDelivery, WebhookEndpoint

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

logger = logging.getLogger(__name__)

DELIVER_JOB = "scans.webhooks.webhook_deliver"
EVENT_SCAN_FINISHED = "scan.finished"
SIGNATURE_HEADER = "X-Unmask-Signature"
TIMESTAMP_HEADER = "X-Unmask-Timestamp"
USER_AGENT = "Unmask-Webhooks/1"
# Only the start of a receiver's error answer is kept in the log.
_ERROR_EXCERPT_CHARS = 300
_url_validator = URLValidator(schemes=["http", "https"])
# Ids beyond PostgreSQL's bigint would make the lookup itself fail: they name no endpoint.
_MAX_BIGINT = 2**63


class WebhookRejected(Exception):
    """An endpoint that cannot be registered; `message` is shown to the user as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class WebhookDeliveryFailed(Exception):
    """The receiver did not accept a delivery; raising it makes RQ retry the job after the next interval."""


# --- Endpoints -----------------------------------------------------------------------------------------


@transaction.atomic
def webhook_endpoint_create(*, owner: AbstractBaseUser, url: str) -> WebhookEndpoint:
    """Register `url` (http or https only) for the owner's finished scans, with a newly generated secret.

    Raises `WebhookRejected` for another scheme, a malformed URL, one already registered, or one too many.
    """
    url = (url or "").strip()
    try:
        _url_validator(url)
    except ValidationError:
        raise WebhookRejected("Enter a full http:// or https:// URL.") from None
    if urllib.parse.urlsplit(url).username is not None:
        raise WebhookRejected("Put credentials in the receiver's own check of the signature, not in the URL.")
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


def webhook_endpoint_list_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[WebhookEndpoint]:
    """The user's own endpoints, oldest first; nothing for an anonymous user."""
    if not user.is_authenticated:
        return WebhookEndpoint.objects.none()
    return WebhookEndpoint.objects.filter(owner=user)


def webhook_endpoint_get_for_user(*, user: AbstractBaseUser | AnonymousUser, endpoint_id: Any) -> WebhookEndpoint:
    """One of the user's endpoints; `WebhookEndpoint.DoesNotExist` for anyone else's or a malformed id."""
    try:
        endpoint_pk = int(endpoint_id)
    except (TypeError, ValueError):
        raise WebhookEndpoint.DoesNotExist from None
    if not 0 < endpoint_pk < _MAX_BIGINT:
        raise WebhookEndpoint.DoesNotExist
    return webhook_endpoint_list_for_user(user=user).get(pk=endpoint_pk)


def webhook_delivery_list_for_user(
    *, user: AbstractBaseUser | AnonymousUser, endpoint: WebhookEndpoint | None = None
) -> QuerySet[WebhookDelivery]:
    """Delivery attempts to the user's endpoints (or one of them), newest first."""
    if not user.is_authenticated:
        return WebhookDelivery.objects.none()
    deliveries = WebhookDelivery.objects.filter(endpoint__owner=user).select_related("endpoint")
    if endpoint is not None:
        deliveries = deliveries.filter(endpoint=endpoint)
    return deliveries


# --- Scheduling ----------------------------------------------------------------------------------------


def webhooks_schedule_for_scan(*, scan_id: uuid.UUID | str) -> int:
    """Enqueue one delivery job per active endpoint of the scan's owner; returns how many.

    Called on commit of a scan's move to done or failed. A Redis outage loses these deliveries (logged)
    but never the scan's own state, which is already committed.
    """
    owner_id = Scan.objects.filter(pk=scan_id).values_list("owner_id", flat=True).first()
    if owner_id is None:
        return 0
    endpoint_ids = list(WebhookEndpoint.objects.filter(owner_id=owner_id, is_active=True).values_list("pk", flat=True))
    if not endpoint_ids:
        return 0
    intervals = list(settings.UNMASK_WEBHOOK_RETRY_INTERVALS)
    queue = django_rq.get_queue(settings.UNMASK_WEBHOOK_QUEUE, commit_mode="auto")
    scheduled = 0
    for endpoint_id in endpoint_ids:
        try:
            queue.enqueue(
                DELIVER_JOB,
                str(scan_id),
                endpoint_id,
                job_id=f"webhook-{scan_id}-{endpoint_id}",
                job_timeout=int(settings.UNMASK_WEBHOOK_TIMEOUT) + 30,
                retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
                description=f"webhook for scan {scan_id} to endpoint {endpoint_id}",
                result_ttl=24 * 3600,
                failure_ttl=7 * 24 * 3600,
            )
            scheduled += 1
        except redis.RedisError:
            logger.exception("Could not enqueue the webhook for scan %s to endpoint %s", scan_id, endpoint_id)
    return scheduled


# --- Delivery ------------------------------------------------------------------------------------------


@with_scan_log_context
def webhook_deliver(scan_id: str, endpoint_id: int) -> str:
    """RQ job: POST the finished scan to the endpoint, log the attempt, raise so RQ retries when it failed.

    Takes ids and reloads both rows: a deleted scan or endpoint, or a deactivated endpoint, ends the job
    ("skipped"). Returns "delivered" when the receiver answered 2xx.
    """
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id, is_active=True).first()
    scan = Scan.objects.filter(pk=scan_id).select_related("image_model_version", "video_model_version").first()
    if endpoint is None or scan is None:
        logger.info("Webhook for scan %s to endpoint %s skipped: scan or endpoint is gone", scan_id, endpoint_id)
        return "skipped"
    attempt = WebhookDelivery.objects.filter(endpoint=endpoint, scan_reference=scan.pk).count() + 1
    body = json.dumps(webhook_payload(scan=scan), separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    delivery_id = uuid.uuid4()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Unmask-Event": EVENT_SCAN_FINISHED,
        "X-Unmask-Delivery": str(delivery_id),
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: webhook_signature(secret=endpoint.secret, timestamp=timestamp, body=body),
    }
    started = time.monotonic()
    status_code, error = _post(endpoint.url, body=body, headers=headers)
    succeeded = status_code is not None and 200 <= status_code < 300
    WebhookDelivery.objects.create(
        endpoint=endpoint,
        scan=scan,
        scan_reference=scan.pk,
        event=EVENT_SCAN_FINISHED,
        attempt=attempt,
        succeeded=succeeded,
        status_code=status_code,
        error="" if succeeded else error,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    if not succeeded:
        logger.warning("Webhook for scan %s to %s failed (attempt %d): %s", scan_id, endpoint.url, attempt, error)
        raise WebhookDeliveryFailed(error)
    logger.info("Webhook for scan %s delivered to %s (attempt %d)", scan_id, endpoint.url, attempt)
    return "delivered"


def webhook_payload(*, scan: Scan) -> dict[str, Any]:
    """What a receiver gets: the event, and the scan as the API shows it (result included)."""
    return {
        "event": EVENT_SCAN_FINISHED,
        "sent_at": timezone.now().isoformat(),
        "scan": {
            "id": str(scan.pk),
            "path": reverse("api:scan-detail", args=[scan.pk]),
            "kind": scan.kind,
            "status": scan.status,
            "verdict": scan.verdict or None,
            "fake_probability": scan.fake_probability,
            "original_filename": scan.original_filename,
            "sha256": scan.sha256,
            "created_at": scan.created_at.isoformat(),
            "finished_at": scan.finished_at.isoformat() if scan.finished_at else None,
            "error": scan.error_message,
            "result": scan.result,
        },
    }


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Unmask-Signature` value: `sha256=` + hex HMAC-SHA256 of `<timestamp>.<body>` with the secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_signature_is_valid(*, secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver checks (constant-time); documented here so receivers in Python can copy it."""
    return hmac.compare_digest(webhook_signature(secret=secret, timestamp=timestamp, body=body), signature)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could lead a delivery to an address the URL check never saw, so none is followed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _post(url: str, *, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    """POST and return (status code, error text); the status is None when no answer came back."""
    refusal = _destination_refusal(url)
    if refusal:
        return None, refusal
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (http/https only)
    try:
        with _opener.open(request, timeout=settings.UNMASK_WEBHOOK_TIMEOUT) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        excerpt = exc.read(_ERROR_EXCERPT_CHARS).decode("utf-8", "replace").strip()
        return exc.code, f"HTTP {exc.code}" + (f": {excerpt}" if excerpt else "")
    except (urllib.error.URLError, OSError) as exc:
        return None, f"no answer: {getattr(exc, 'reason', exc)}"


def _destination_refusal(url: str) -> str:
    """Why the URL may not be called (wrong scheme, private address), or "" when it may."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return "only http:// and https:// URLs are called"
    if settings.UNMASK_WEBHOOK_ALLOW_PRIVATE:
        return ""
    try:
        addresses = {
            info[4][0]
            for info in socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        }
    except OSError as exc:
        return f"the host name does not resolve: {exc}"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not ip.is_global or ip.is_multicast:
            return f"{parts.hostname} resolves to a private or reserved address ({ip}), which webhooks may not call"
    return ""
