"""OpenAPI descriptions of the token API views (see scans/api_schema.py for why they are declared apart)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer

from accounts import apis

_described = False


def describe_api() -> None:
    """Attach the schema descriptions to the token API views (idempotent)."""
    global _described
    if _described:
        return
    _described = True
    extend_schema_view(
        post=extend_schema(
            request=AuthTokenSerializer,
            responses={
                200: inline_serializer("TokenObtained", fields={"token": serializers.CharField()}),
                400: OpenApiTypes.OBJECT,
                429: OpenApiResponse(
                    OpenApiTypes.OBJECT,
                    description="Locked out after too many failed log-ins; Retry-After gives the seconds left.",
                ),
            },
        )
    )(apis.TokenObtainApi)
    extend_schema_view(post=extend_schema(request=None, responses={200: OpenApiTypes.OBJECT}))(apis.TokenRegenerateApi)
