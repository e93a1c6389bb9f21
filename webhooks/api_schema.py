"""OpenAPI descriptions of the webhook API views (see scans/api_schema.py for why they are declared apart)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_serializer, extend_schema_view

from scans.api_schema import NOT_FOUND
from webhooks import apis

_described = False


def describe_api() -> None:
    """Attach the schema descriptions to the webhook API views (idempotent)."""
    global _described
    if _described:
        return
    _described = True
    extend_schema_serializer(component_name="WebhookEndpointInput")(apis.WebhookListApi.InputSerializer)
    extend_schema_view(
        get=extend_schema(responses=apis.WebhookEndpointOutputSerializer(many=True)),
        post=extend_schema(
            request=apis.WebhookListApi.InputSerializer,
            responses={201: apis.WebhookEndpointOutputSerializer, 400: OpenApiTypes.OBJECT},
        ),
    )(apis.WebhookListApi)
    extend_schema_view(
        get=extend_schema(responses={200: apis.WebhookEndpointOutputSerializer, 404: NOT_FOUND}),
        delete=extend_schema(responses={204: None, 404: NOT_FOUND}),
    )(apis.WebhookDetailApi)
    extend_schema_view(
        post=extend_schema(request=None, responses={200: apis.WebhookEndpointOutputSerializer, 404: NOT_FOUND})
    )(apis.WebhookResumeApi)
    extend_schema_view(get=extend_schema(responses=apis.WebhookDeliveryOutputSerializer(many=True)))(
        apis.WebhookDeliveryListApi
    )
