"""OpenAPI descriptions of the token API views (see scans/api_schema.py for why they are declared apart)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view

from accounts import apis

_described = False


def describe_api() -> None:
    """Attach the schema descriptions to the token API views (idempotent)."""
    global _described
    if _described:
        return
    _described = True
    extend_schema_view(post=extend_schema(request=None, responses={200: OpenApiTypes.OBJECT}))(apis.TokenRegenerateApi)
