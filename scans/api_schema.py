"""OpenAPI descriptions of the scan API views, for the schema at /api/v1/schema/ (drf-spectacular).

The views are plain `APIView`s with nested serializers, which drf-spectacular cannot guess, so their
request and response shapes are declared here, beside the views rather than inside them (each app that has
an API does the same: accounts, webhooks). `describe_api()` applies them once, when the URL configuration
loads.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers

from scans import apis, batch_apis, metrics

ERROR = inline_serializer("Error", fields={"detail": serializers.CharField()})
_BINARY = OpenApiResponse(OpenApiTypes.BINARY, description="The file's bytes.")
NOT_FOUND = OpenApiResponse(ERROR, description="No such object, or another user's.")
_described = False


def describe_api() -> None:
    """Attach the schema descriptions to the API views (idempotent)."""
    global _described
    if _described:
        return
    _described = True
    # Views name their input serializer `InputSerializer`: give each its own component name.
    extend_schema_serializer(component_name="ScanUpload")(apis.ScanListApi.InputSerializer)
    extend_schema_serializer(component_name="ScanByUrl")(apis.ScanListApi.LinkSerializer)
    extend_schema_view(
        get=extend_schema(
            parameters=[apis.ScanListApi.FilterSerializer],
            responses={200: apis.ScanSummaryOutputSerializer(many=True), 404: NOT_FOUND},
        ),
        post=extend_schema(
            request={
                "multipart/form-data": apis.ScanListApi.InputSerializer,
                "application/json": apis.ScanListApi.LinkSerializer,
            },
            responses={
                202: apis.ScanDetailOutputSerializer,
                400: ERROR,
                403: ERROR,
                404: ERROR,
                413: ERROR,
                415: ERROR,
                429: ERROR,
                503: ERROR,
            },
        ),
    )(apis.ScanListApi)
    extend_schema_serializer(component_name="ScanMove")(apis.ScanDetailApi.MoveSerializer)
    owner_only = OpenApiResponse(ERROR, description="A team member who did not upload the scan.")
    extend_schema_view(
        get=extend_schema(responses={200: apis.ScanDetailOutputSerializer, 404: NOT_FOUND}),
        patch=extend_schema(
            request=apis.ScanDetailApi.MoveSerializer,
            responses={200: apis.ScanDetailOutputSerializer, 400: ERROR, 403: owner_only, 404: NOT_FOUND},
        ),
        delete=extend_schema(responses={204: None, 403: owner_only, 404: NOT_FOUND}),
    )(apis.ScanDetailApi)
    extend_schema_serializer(component_name="ScanBulkDelete")(apis.ScanBulkDeleteApi.InputSerializer)
    extend_schema_serializer(component_name="ScanBulkDeleteResult")(apis.ScanBulkDeleteApi.OutputSerializer)
    extend_schema_view(
        post=extend_schema(
            request=apis.ScanBulkDeleteApi.InputSerializer,
            responses={200: apis.ScanBulkDeleteApi.OutputSerializer, 400: OpenApiTypes.OBJECT},
        )
    )(apis.ScanBulkDeleteApi)
    extend_schema_view(get=extend_schema(responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT}))(
        apis.HealthApi
    )
    for binary_view in (apis.ScanEvidenceApi, apis.ScanExportPdfApi, apis.ScanExportCsvApi):
        extend_schema_view(get=extend_schema(responses={200: _BINARY, 404: NOT_FOUND}))(binary_view)
    extend_schema_view(get=extend_schema(responses={200: OpenApiTypes.OBJECT, 404: NOT_FOUND}))(apis.ScanExportJsonApi)
    extend_schema_view(get=extend_schema(responses={200: OpenApiTypes.STR}))(metrics.MetricsApi)
    batch_upload = inline_serializer(
        "BatchUpload", fields={"files": serializers.ListField(child=serializers.FileField(use_url=False))}
    )
    extend_schema_view(
        get=extend_schema(responses=batch_apis.BatchOutputSerializer(many=True)),
        post=extend_schema(
            request={"multipart/form-data": batch_upload},
            responses={202: batch_apis.BatchOutputSerializer, 400: ERROR, 413: ERROR, 429: ERROR, 503: ERROR},
        ),
    )(batch_apis.BatchListApi)
    extend_schema_view(get=extend_schema(responses={200: batch_apis.BatchOutputSerializer, 404: NOT_FOUND}))(
        batch_apis.BatchDetailApi
    )
    extend_schema_view(get=extend_schema(responses={200: _BINARY, 404: NOT_FOUND}))(batch_apis.BatchCsvApi)
