"""Webhook endpoints of users and the log of every delivery attempt to them."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models


def webhook_secret_new() -> str:
    """A fresh signing secret: 256 random bits as hex."""
    return secrets.token_hex(32)


class WebhookEndpoint(models.Model):
    """A user's URL that receives a signed POST with the result whenever one of their scans finishes.

    Each endpoint has its own secret; deliveries carry `X-Unmask-Signature: sha256=<HMAC-SHA256 of
    "<timestamp>.<body>">` so the receiver can check that the call came from this platform, unaltered.

    Circuit breaker: `consecutive_failures` counts the failed attempts since the last success; at
    UNMASK_WEBHOOK_PAUSE_AFTER_FAILURES the endpoint is paused (`paused_at`) and gets no deliveries until its
    owner resumes it.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=64, default=webhook_secret_new, editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    paused_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # The table the scans app created before webhooks were an app of their own (rows kept as they were).
        db_table = "scans_webhookendpoint"
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["owner", "url"], name="unique_webhook_url_per_owner")]

    def __str__(self) -> str:
        return f"webhook {self.url} ({self.owner_id})"

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None


class WebhookDelivery(models.Model):
    """One attempt to POST a finished scan to an endpoint: what the receiver answered, or why it failed.

    The log outlives the scan (`scan` becomes null when it is deleted; `scan_reference` keeps its id).
    """

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    scan = models.ForeignKey("scans.Scan", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    scan_reference = models.UUIDField()
    event = models.CharField(max_length=32)
    attempt = models.PositiveSmallIntegerField()
    succeeded = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "scans_webhookdelivery"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_recent")]

    def __str__(self) -> str:
        outcome = "ok" if self.succeeded else "failed"
        return f"delivery of scan {self.scan_reference} to {self.endpoint_id}, attempt {self.attempt}: {outcome}"
