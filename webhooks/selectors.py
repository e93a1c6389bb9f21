"""Reads on webhooks: a user's own endpoints and the log of deliveries to them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet

from webhooks.models import WebhookDelivery, WebhookEndpoint

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

# Ids beyond PostgreSQL's bigint would make the lookup itself fail: they name no endpoint.
_MAX_BIGINT = 2**63


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
