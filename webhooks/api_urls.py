"""Webhook API routes under /api/v1/webhooks/ (namespace `webhooks_api`)."""

from __future__ import annotations

from django.urls import path

from webhooks import apis

app_name = "webhooks_api"

urlpatterns = [
    path("webhooks/", apis.WebhookListApi.as_view(), name="list"),
    path("webhooks/deliveries/", apis.WebhookDeliveryListApi.as_view(), name="deliveries"),
    path("webhooks/<str:endpoint_id>/", apis.WebhookDetailApi.as_view(), name="detail"),
    path("webhooks/<str:endpoint_id>/resume/", apis.WebhookResumeApi.as_view(), name="resume"),
]
