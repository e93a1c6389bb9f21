"""Batch API (DRF) under /api/v1/batches/: upload many files at once, follow the batch, export it as CSV."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scans.apis import ScanSummaryOutputSerializer
from scans.batches import batch_create, batch_get_for_user, batch_list_for_user, batch_progress, batch_scans
from scans.exports import export_response, scans_export_csv
from scans.intake import BatchRejected, batch_request_size_check
from scans.models import Batch
from scans.upload_handlers import ScanUploadHandler


class BatchOutputSerializer(serializers.ModelSerializer):
    """A batch: its status ("processing" until every scan has finished), counts, scans and refused files."""

    url = serializers.SerializerMethodField()
    csv_url = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()
    scans = serializers.SerializerMethodField()

    class Meta:
        model = Batch
        fields = ["id", "url", "csv_url", "page_url", "status", "counts", "created_at", "scans", "rejected"]
        read_only_fields = fields

    def get_url(self, batch: Batch) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:batch-detail", args=[batch.pk]))

    def get_csv_url(self, batch: Batch) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:batch-csv", args=[batch.pk]))

    def get_page_url(self, batch: Batch) -> str:
        return self.context["request"].build_absolute_uri(reverse("scans:batch", args=[batch.pk]))

    def get_status(self, batch: Batch) -> str:
        return batch_progress(batch=batch).status

    def get_counts(self, batch: Batch) -> dict[str, Any]:
        progress = batch_progress(batch=batch)
        return {
            "scans": progress.total,
            "rejected": progress.rejected,
            "by_status": progress.by_status,
            "by_verdict": progress.by_verdict,
        }

    def get_scans(self, batch: Batch) -> list[dict[str, Any]]:
        return ScanSummaryOutputSerializer(batch_scans(batch=batch), many=True, context=self.context).data


class BatchListApi(APIView):
    """GET: the caller's batches, newest first. POST multipart with one or more `files`: a new batch (202)."""

    parser_classes = [MultiPartParser]

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        """Each file is hashed and checked as it streams to disk (see `ScanListApi.initialize_request`)."""
        if request.method == "POST":
            request.upload_handlers = [ScanUploadHandler(request)]
        return super().initialize_request(request, *args, **kwargs)

    def get(self, request: Request) -> Response:
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(batch_list_for_user(user=request.user), request, view=self)
        return paginator.get_paginated_response(
            BatchOutputSerializer(page, many=True, context={"request": request}).data
        )

    def post(self, request: Request) -> Response:
        try:
            # Checked before `request.data`, which reads the whole body.
            batch_request_size_check(content_length=request.META.get("CONTENT_LENGTH"))
            batch = batch_create(owner=request.user, uploaded_files=request.FILES.getlist("files"))
        except BatchRejected as exc:
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
            return Response({"detail": exc.message}, status=exc.status_code, headers=headers)
        data = BatchOutputSerializer(batch, context={"request": request}).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})


class BatchDetailApi(APIView):
    """GET: one of the caller's batches with its scans. Anyone else's is a 404."""

    def get(self, request: Request, batch_id: str) -> Response:
        batch = _own_batch_or_404(request, batch_id)
        return Response(BatchOutputSerializer(batch, context={"request": request}).data)


class BatchCsvApi(APIView):
    """GET: the batch's scans as CSV (the same columns as the history export)."""

    def get(self, request: Request, batch_id: str) -> HttpResponse:
        batch = _own_batch_or_404(request, batch_id)
        return export_response(
            content=scans_export_csv(scans=batch_scans(batch=batch)),
            content_type="text/csv; charset=utf-8",
            filename=f"unmask-batch-{batch.pk}.csv",
        )


def _own_batch_or_404(request: Request, batch_id: str) -> Batch:
    try:
        return batch_get_for_user(user=request.user, batch_id=batch_id)
    except Batch.DoesNotExist:
        raise NotFound("No such batch.") from None
