"""Webhook API (DRF) under /api/v1/webhooks/: register, list and remove endpoints, read their delivery log."""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.selectors import (
    webhook_delivery_list_for_user,
    webhook_endpoint_get_for_user,
    webhook_endpoint_list_for_user,
)
from webhooks.services import (
    WebhookRejected,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_resume,
)


class WebhookEndpointOutputSerializer(serializers.ModelSerializer):
    """An endpoint with its signing secret (shown to its owner only: every query is scoped to the caller), and its
    circuit breaker: `paused` (since `paused_at`) after too many failed deliveries in a row, until resumed."""

    paused = serializers.BooleanField(source="is_paused")

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "secret", "is_active", "paused", "paused_at", "consecutive_failures", "created_at"]
        read_only_fields = fields


class WebhookDeliveryOutputSerializer(serializers.ModelSerializer):
    """One delivery attempt: which scan, which endpoint, what the receiver answered."""

    scan_id = serializers.UUIDField(source="scan_reference")
    endpoint_id = serializers.IntegerField(source="endpoint.pk")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "endpoint_id",
            "scan_id",
            "event",
            "attempt",
            "succeeded",
            "status_code",
            "error",
            "duration_ms",
            "created_at",
        ]
        read_only_fields = fields


class WebhookListApi(APIView):
    """GET: the caller's endpoints. POST {"url": ...}: register one; its secret is generated and returned."""

    class InputSerializer(serializers.Serializer):
        url = serializers.CharField(max_length=500)

    def get(self, request: Request) -> Response:
        endpoints = webhook_endpoint_list_for_user(user=request.user)
        return Response(WebhookEndpointOutputSerializer(endpoints, many=True).data)

    def post(self, request: Request) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            endpoint = webhook_endpoint_create(owner=request.user, url=payload.validated_data["url"])
        except WebhookRejected as exc:
            return Response({"url": [exc.message]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(WebhookEndpointOutputSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class WebhookDetailApi(APIView):
    """GET: one of the caller's endpoints. DELETE: remove it with its log. Anyone else's is a 404."""

    def get(self, request: Request, endpoint_id: str) -> Response:
        return Response(WebhookEndpointOutputSerializer(_own_endpoint_or_404(request, endpoint_id)).data)

    def delete(self, request: Request, endpoint_id: str) -> Response:
        webhook_endpoint_delete(endpoint=_own_endpoint_or_404(request, endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookResumeApi(APIView):
    """POST: resume one of the caller's endpoints that its circuit breaker paused (a no-op for a running one)."""

    def post(self, request: Request, endpoint_id: str) -> Response:
        endpoint = webhook_endpoint_resume(endpoint=_own_endpoint_or_404(request, endpoint_id))
        return Response(WebhookEndpointOutputSerializer(endpoint).data)


class WebhookDeliveryListApi(APIView):
    """GET: the delivery log, newest first, paginated: all the caller's endpoints, or one (`?endpoint=<id>`)."""

    def get(self, request: Request) -> Response:
        endpoint_id = request.query_params.get("endpoint")
        endpoint = _own_endpoint_or_404(request, endpoint_id) if endpoint_id else None
        deliveries = webhook_delivery_list_for_user(user=request.user, endpoint=endpoint)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(deliveries, request, view=self)
        return paginator.get_paginated_response(WebhookDeliveryOutputSerializer(page, many=True).data)


def _own_endpoint_or_404(request: Request, endpoint_id: str) -> WebhookEndpoint:
    try:
        return webhook_endpoint_get_for_user(user=request.user, endpoint_id=endpoint_id)
    except WebhookEndpoint.DoesNotExist:
        raise NotFound("No such webhook.") from None
