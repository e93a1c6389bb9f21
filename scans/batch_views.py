"""Dashboard pages for batches: drop many files at once, follow the batch, download its CSV."""

from __future__ import annotations

from uuid import UUID

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from scans.batches import batch_create, batch_get_for_user, batch_list_for_user, batch_progress, batch_scans
from scans.exports import export_response, scans_export_csv
from scans.intake import BatchRejected, batch_request_size_check
from scans.media_types import UPLOAD_ACCEPT
from scans.models import Batch, Scan
from scans.wording import batch_summary_text

RECENT_BATCHES = 20


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class BatchUploadForm(forms.Form):
    """Several files at once; each is judged by `scan_create` like a single upload."""

    files = forms.FileField(
        label="Photos and videos",
        widget=MultipleFileInput(attrs={"accept": UPLOAD_ACCEPT, "multiple": True}),
        required=False,
    )


@login_required
@require_http_methods(["GET", "POST"])
def batch_new(request: HttpRequest) -> HttpResponse:
    """GET: the multi-file form and recent batches. POST: create the batch and go to its page."""
    error = ""
    status = 200
    if request.method == "POST":
        try:
            batch_request_size_check(content_length=request.META.get("CONTENT_LENGTH"))
            batch = batch_create(owner=request.user, uploaded_files=request.FILES.getlist("files"))
        except BatchRejected as exc:
            error, status = exc.message, exc.status_code
        else:
            accepted = batch.scans.count()
            # Tagged so the page drops it once every scan has finished (static/js/scan.js).
            messages.success(
                request,
                f"{accepted} file{'s' if accepted != 1 else ''} queued for analysis.",
                extra_tags="while-running",
            )
            return redirect("scans:batch", batch_id=batch.pk)
    context = {
        "form": BatchUploadForm(),
        "error": error,
        "batches": batch_list_for_user(user=request.user)[:RECENT_BATCHES],
        "max_files": settings.UNMASK_BATCH_MAX_FILES,
    }
    return render(request, "scans/batch_new.html", context, status=status)


@login_required
@require_GET
def batch_detail(request: HttpRequest, batch_id: UUID) -> HttpResponse:
    """The batch's progress, its scans with their verdicts, and the files it refused."""
    batch = _batch_or_404(request, batch_id)
    progress = batch_progress(batch=batch)
    context = {
        "batch": batch,
        "progress": progress,
        "running": progress.by_status.get(Scan.Status.QUEUED, 0) + progress.by_status.get(Scan.Status.PROCESSING, 0),
        "summary": batch_summary_text(progress),
        "scans": batch_scans(batch=batch),
    }
    return render(request, "scans/batch.html", context)


@login_required
@require_GET
def batch_csv(request: HttpRequest, batch_id: UUID) -> HttpResponse:
    """The batch's scans as a CSV download."""
    batch = _batch_or_404(request, batch_id)
    return export_response(
        content=scans_export_csv(scans=batch_scans(batch=batch)),
        content_type="text/csv; charset=utf-8",
        filename=f"unmask-batch-{batch.pk}.csv",
    )


def _batch_or_404(request: HttpRequest, batch_id: UUID) -> Batch:
    try:
        return batch_get_for_user(user=request.user, batch_id=batch_id)
    except Batch.DoesNotExist:
        raise Http404("No such batch.") from None
