"""Scan API (DRF): thin views that validate input, call a selector or service and serialise the answer."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scans.evidence import evidence_file_response, evidence_for_api
from scans.exports import export_response, scan_export_data, scan_export_pdf, scans_export_csv
from scans.models import Scan
from scans.ratelimit import UploadThrottled, upload_attempt_register, upload_quota_release
from scans.selectors import platform_health, scan_get_for_user, scan_list_for_user
from scans.services import UploadRejected, scan_create, scan_delete, scans_delete_many, upload_request_size_check
from scans.upload_handlers import ScanUploadHandler
from training.models import ModelVersion


class ScanPagination(PageNumberPagination):
    """Pages of 20 scans by default; clients may ask for up to 100 with `page_size`."""

    page_size_query_param = "page_size"
    max_page_size = 100


def _model_version_data(model_version: ModelVersion | None) -> dict[str, Any] | None:
    if model_version is None:
        return None
    return {
        "id": model_version.pk,
        "name": model_version.name,
        "version": model_version.version,
        "label": model_version.label,
    }


class ScanSummaryOutputSerializer(serializers.ModelSerializer):
    """One scan in a list: enough to show a history row and follow its URL."""

    url = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()

    class Meta:
        model = Scan
        fields = [
            "id",
            "url",
            "page_url",
            "kind",
            "status",
            "verdict",
            "fake_probability",
            "original_filename",
            "content_type",
            "size_bytes",
            "created_at",
            "started_at",
            "finished_at",
            "reused_from",
        ]
        read_only_fields = fields

    def get_url(self, scan: Scan) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:scan-detail", args=[scan.pk]))

    def get_page_url(self, scan: Scan) -> str:
        return self.context["request"].build_absolute_uri(reverse("scans:detail", args=[scan.pk]))


class ScanDetailOutputSerializer(ScanSummaryOutputSerializer):
    """One scan in full: progress while it runs, the result and the model versions once it is done."""

    error = serializers.CharField(source="error_message")
    models = serializers.SerializerMethodField()
    evidence = serializers.SerializerMethodField()

    class Meta(ScanSummaryOutputSerializer.Meta):
        fields = [
            *ScanSummaryOutputSerializer.Meta.fields,
            "sha256",
            "progress",
            "faces",
            "timings",
            "result",
            "error",
            "models",
            "attempts",
            "evidence",
        ]
        read_only_fields = fields

    def get_models(self, scan: Scan) -> dict[str, Any]:
        return {
            "image": _model_version_data(scan.image_model_version),
            "video": _model_version_data(scan.video_model_version),
        }

    def get_evidence(self, scan: Scan) -> dict[str, Any]:
        request = self.context["request"]
        return evidence_for_api(
            result=scan.result,
            url_for=lambda name: request.build_absolute_uri(reverse("api:scan-evidence", args=[scan.pk, name])),
        )


class ScanListApi(APIView):
    """GET: the caller's own scans, newest first, paginated and filtered. POST: upload a file to scan."""

    parser_classes = [MultiPartParser, FormParser]

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        """Install `ScanUploadHandler` before anything (CSRF checks included) reads the request body."""
        if request.method == "POST":
            request.upload_handlers = [ScanUploadHandler(request)]
        return super().initialize_request(request, *args, **kwargs)

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Scan.Status.choices, required=False)
        verdict = serializers.ChoiceField(choices=Scan.Verdict.choices, required=False)
        kind = serializers.ChoiceField(choices=Scan.Kind.choices, required=False)
        q = serializers.CharField(required=False, allow_blank=True, max_length=100)
        date_from = serializers.DateField(required=False)
        date_to = serializers.DateField(required=False)

    class InputSerializer(serializers.Serializer):
        # Empty files pass here so that scan_create gives its own reason, like any other rejected content.
        file = serializers.FileField(allow_empty_file=True, max_length=None, use_url=False)

    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        # A list row needs none of the JSON documents: a video's result alone can run to hundreds of kilobytes.
        scans = scan_list_for_user(user=request.user, filters=filters.validated_data).defer(
            "result", "faces", "timings", "progress"
        )
        paginator = ScanPagination()
        page = paginator.paginate_queryset(scans, request, view=self)
        data = ScanSummaryOutputSerializer(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)

    def post(self, request: Request) -> Response:
        try:
            # Checked before `request.data`, which reads the whole body.
            upload_request_size_check(content_length=request.META.get("CONTENT_LENGTH"))
            upload_attempt_register(user=request.user)
        except UploadRejected as exc:
            return Response({"detail": exc.message}, status=exc.status_code)
        except UploadThrottled as exc:
            return Response(
                {"detail": exc.message},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(exc.retry_after)},
            )
        accepted = False
        try:
            upload = self.InputSerializer(data=request.data)
            upload.is_valid(raise_exception=True)
            scan = scan_create(owner=request.user, uploaded_file=upload.validated_data["file"])
            accepted = True
        except UploadRejected as exc:
            return Response({"detail": exc.message}, status=exc.status_code)
        finally:
            if not accepted:
                upload_quota_release(user=request.user)
        data = ScanDetailOutputSerializer(scan, context={"request": request}).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})


class ScanDetailApi(APIView):
    """GET: one of the caller's scans. DELETE: remove it and its file. Anyone else's scan is a 404."""

    def get(self, request: Request, scan_id: str) -> Response:
        scan = _own_scan_or_404(request, scan_id)
        return Response(ScanDetailOutputSerializer(scan, context={"request": request}).data)

    def delete(self, request: Request, scan_id: str) -> Response:
        scan = _own_scan_or_404(request, scan_id)
        scan_delete(scan=scan)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScanBulkDeleteApi(APIView):
    """POST `{"ids": [...]}`: delete those of the caller's scans, with their files; says how many went.

    Ids of other users' scans, and of scans that do not exist, are reported back as not found and never
    deleted, in the same list, so the answer does not reveal whether someone else's scan exists.
    """

    class InputSerializer(serializers.Serializer):
        ids = serializers.ListField(
            child=serializers.UUIDField(),
            allow_empty=False,
            max_length=100,
            error_messages={"empty": "Give at least one scan id to delete."},
        )

    class OutputSerializer(serializers.Serializer):
        deleted = serializers.IntegerField(help_text="How many of the caller's scans were deleted.")
        not_found = serializers.ListField(
            child=serializers.UUIDField(), help_text="Ids that are not scans of the caller; nothing was done to them."
        )

    def post(self, request: Request) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        # Each id once, in the order given: a repeated id must not count twice.
        scan_ids = list(dict.fromkeys(payload.validated_data["ids"]))
        deleted_ids = scans_delete_many(owner=request.user, scan_ids=scan_ids)
        not_found = [scan_id for scan_id in scan_ids if scan_id not in deleted_ids]
        return Response(self.OutputSerializer({"deleted": len(deleted_ids), "not_found": not_found}).data)


class HealthApi(APIView):
    """Database, Redis, live workers, queue depth and active model versions; 503 when a service is down."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        health = platform_health()
        http_status = status.HTTP_503_SERVICE_UNAVAILABLE if health["status"] == "unavailable" else status.HTTP_200_OK
        return Response(health, status=http_status)


class ScanEvidenceApi(APIView):
    """GET: one evidence image (face crop, heatmap, key frame) of one of the caller's scans; otherwise 404."""

    def get(self, request: Request, scan_id: str, name: str) -> HttpResponse:
        scan = _own_scan_or_404(request, scan_id)
        return evidence_file_response(scan=scan, name=name)


class ScanExportJsonApi(APIView):
    """GET: one of the caller's scans as its JSON export document (identity, models, full result)."""

    def get(self, request: Request, scan_id: str) -> Response:
        return Response(scan_export_data(scan=_own_scan_or_404(request, scan_id)))


class ScanExportPdfApi(APIView):
    """GET: one of the caller's scans as a one-page PDF report."""

    def get(self, request: Request, scan_id: str) -> HttpResponse:
        scan = _own_scan_or_404(request, scan_id)
        return export_response(
            content=scan_export_pdf(scan=scan), content_type="application/pdf", filename=f"unmask-scan-{scan.id}.pdf"
        )


class ScanExportCsvApi(APIView):
    """GET: the caller's scans as CSV (one row per scan), with the same filters as the list."""

    def get(self, request: Request) -> HttpResponse:
        filters = ScanListApi.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        scans = scan_list_for_user(user=request.user, filters=filters.validated_data)
        return export_response(
            content=scans_export_csv(scans=scans), content_type="text/csv; charset=utf-8", filename="unmask-scans.csv"
        )


def _own_scan_or_404(request: Request, scan_id: str) -> Scan:
    try:
        return scan_get_for_user(user=request.user, scan_id=scan_id)
    except Scan.DoesNotExist:
        raise NotFound("No such scan.") from None
