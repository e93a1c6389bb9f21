"""Dashboard pages: upload + history, scan detail, delete, and the owner-only file stream."""

from __future__ import annotations

import unicodedata
from pathlib import PurePath
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from scans.evidence import evidence_file_response, timeline_chart
from scans.exports import export_json_bytes, export_response, scan_export_pdf, scans_export_csv
from scans.forms import ScanBulkDeleteForm, ScanFilterForm, ScanUploadForm
from scans.models import Scan
from scans.protected_media import private_file_response
from scans.ratelimit import UploadThrottled, upload_attempt_register, upload_quota_release
from scans.selectors import scan_get_for_user, scan_list_for_user
from scans.services import UploadRejected, scan_create, scan_delete, scans_delete_many

HISTORY_PAGE_SIZE = 20

VERDICT_LABELS = dict(Scan.Verdict.choices)
VERDICT_HEADLINES = {
    Scan.Verdict.REAL: "Likely real",
    Scan.Verdict.FAKE: "Likely a deepfake",
    Scan.Verdict.UNCERTAIN: "Uncertain: the model cannot tell",
    Scan.Verdict.NO_FACE: "No face found, so there is nothing to judge",
}

# Only these types are ever sent with their own Content-Type; anything else is served as an opaque download,
# so a stored file can never be interpreted as HTML or script by a browser.
STREAMABLE_CONTENT_TYPES = {
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/bmp",
    "image/gif",
    "video/mp4",
    "video/quicktime",
    "video/webm",
    "video/x-matroska",
    "video/x-msvideo",
}

# Stages in the order they run; `total_s` is the analysis (decode to verdict), before the evidence is drawn.
TIMING_ORDER = ("decode_s", "detect_s", "crop_s", "model_s", "total_s", "evidence_s")
TIMING_NAMES = {"total_s": "analysis total", "evidence_s": "evidence (heatmaps)"}


def _scan_or_404(request: HttpRequest, scan_id: Any) -> Scan:
    try:
        return scan_get_for_user(user=request.user, scan_id=scan_id)
    except Scan.DoesNotExist:
        # Another user's scan is indistinguishable from one that does not exist.
        raise Http404("No such scan.") from None


def _render_dashboard(request: HttpRequest, upload_form: ScanUploadForm, *, status: int = 200) -> HttpResponse:
    filter_form = ScanFilterForm(request.GET or None)
    filters = filter_form.selected_filters() if request.GET else {}
    scans = scan_list_for_user(user=request.user, filters=filters)
    page = Paginator(scans, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "upload_form": upload_form,
        "filter_form": filter_form,
        "filters_active": bool(filters),
        "page": page,
        # Tells "you have no scans yet" apart from "no scan matches these filters".
        "has_any_scan": page.paginator.count > 0 or (bool(filters) and scan_list_for_user(user=request.user).exists()),
        "max_image_bytes": settings.UNMASK_MAX_IMAGE_BYTES,
        "max_video_bytes": settings.UNMASK_MAX_VIDEO_BYTES,
    }
    return render(request, "scans/dashboard.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def dashboard(request: HttpRequest) -> HttpResponse:
    """The upload form and the user's scan history (newest first, filterable, paginated)."""
    if request.method == "GET":
        return _render_dashboard(request, ScanUploadForm())
    upload_form = ScanUploadForm(request.POST, request.FILES)
    try:
        upload_attempt_register(user=request.user)
    except UploadThrottled as throttled:
        upload_form.add_error(None, throttled.message)
        response = _render_dashboard(request, upload_form, status=429)
        response["Retry-After"] = str(throttled.retry_after)
        return response
    if not upload_form.is_valid():
        upload_quota_release(user=request.user)
        return _render_dashboard(request, upload_form, status=400)
    try:
        scan = scan_create(owner=request.user, uploaded_file=upload_form.cleaned_data["file"])
    except UploadRejected as rejection:
        upload_quota_release(user=request.user)
        upload_form.add_error("file", rejection.message)
        return _render_dashboard(request, upload_form, status=rejection.status_code)
    if scan.reused_from_id:
        messages.success(
            request,
            f"“{scan.original_filename}” was already analysed with the same models, so its earlier result is shown.",
        )
    else:
        messages.success(request, f"“{scan.original_filename}” was uploaded and is queued for analysis.")
    return redirect("scans:detail", scan_id=scan.id)


def _percent(probability: Any) -> float | None:
    if isinstance(probability, bool) or not isinstance(probability, int | float):
        return None
    return round(float(probability) * 100, 1)


def _box_style(box: Any, media_width: Any, media_height: Any) -> str | None:
    """CSS placing `box` ([x, y, w, h] in source pixels) over the image as percentages of its size."""
    if not (isinstance(media_width, int | float) and isinstance(media_height, int | float)):
        return None
    if media_width <= 0 or media_height <= 0:
        return None
    if not (isinstance(box, list | tuple) and len(box) == 4 and all(isinstance(v, int | float) for v in box)):
        return None
    x, y, width, height = (float(v) for v in box)
    left = min(max(x / media_width * 100, 0.0), 100.0)
    top = min(max(y / media_height * 100, 0.0), 100.0)
    box_width = min(max(width / media_width * 100, 0.0), 100.0 - left)
    box_height = min(max(height / media_height * 100, 0.0), 100.0 - top)
    return f"left: {left:.2f}%; top: {top:.2f}%; width: {box_width:.2f}%; height: {box_height:.2f}%;"


def _verdict_label(verdict: Any) -> str:
    return VERDICT_LABELS.get(verdict, str(verdict or "—"))


def _face_rows(faces: list[Any], media: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for position, face in enumerate(faces):
        if not isinstance(face, dict):
            continue
        box = face.get("box")
        index = face.get("index")
        frame_scores = face.get("frame_scores") or []
        frame_indices = face.get("frame_indices") or range(len(frame_scores))
        rows.append(
            {
                "number": index if isinstance(index, int) else position,
                "box": box if isinstance(box, list | tuple) else None,
                "box_style": _box_style(box, media.get("width"), media.get("height")),
                "confidence": _percent(face.get("confidence")),
                "percent": _percent(face.get("fake_probability")),
                "verdict": face.get("verdict") or "",
                "verdict_label": _verdict_label(face.get("verdict")),
                "n_frames": face.get("n_frames"),
                "sequence_percent": _percent(face.get("sequence_probability")),
                "aggregate_percent": _percent(face.get("aggregate_probability")),
                "crop": face.get("crop") if isinstance(face.get("crop"), str) else None,
                "heatmap": face.get("heatmap") if isinstance(face.get("heatmap"), str) else None,
                "key_frames": [
                    {**frame, "percent": _percent(frame.get("fake_probability"))}
                    for frame in face.get("key_frames") or []
                    if isinstance(frame, dict) and isinstance(frame.get("image"), str)
                ],
                # Not strict: a result with mismatched lists still renders what pairs up instead of failing the page.
                "frame_bars": [
                    {"frame": frame, "percent": _percent(score)}
                    for frame, score in zip(frame_indices, frame_scores, strict=False)
                    if _percent(score) is not None
                ],
            }
        )
    return rows


def _frame_rows(frames: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for frame in frames:
        if not isinstance(frame, dict):
            continue
        rows.append(
            {
                "index": frame.get("index"),
                "time_s": frame.get("time_s"),
                "faces": [
                    {"track": face.get("track"), "percent": _percent(face.get("fake_probability"))}
                    for face in frame.get("faces") or []
                    if isinstance(face, dict)
                ],
            }
        )
    return rows


def _timing_rows(timings: dict[str, Any]) -> list[dict[str, Any]]:
    ordered = [key for key in TIMING_ORDER if key in timings] + sorted(k for k in timings if k not in TIMING_ORDER)
    return [
        {"name": TIMING_NAMES.get(key, key.removesuffix("_s").replace("_", " ")), "seconds": timings[key]}
        for key in ordered
        if isinstance(timings[key], int | float) and not isinstance(timings[key], bool)
    ]


def _detail_context(scan: Scan) -> dict[str, Any]:
    result = scan.result if isinstance(scan.result, dict) else {}
    media = result.get("media") if isinstance(result.get("media"), dict) else {}
    decision = result.get("decision") if isinstance(result.get("decision"), dict) else {}
    models_used = result.get("models") if isinstance(result.get("models"), dict) else {}
    faces = result.get("faces") if isinstance(result.get("faces"), list) else scan.faces or []
    timings = scan.timings or result.get("timings") or {}
    progress = scan.progress if isinstance(scan.progress, dict) else {}
    return {
        "scan": scan,
        "verdict_headline": VERDICT_HEADLINES.get(scan.verdict, ""),
        "percent": _percent(scan.fake_probability),
        "media": media,
        "decision": {
            "threshold": _percent(decision.get("threshold")),
            "uncertain_low": _percent(decision.get("uncertain_low")),
            "uncertain_high": _percent(decision.get("uncertain_high")),
        },
        "faces": _face_rows(faces, media),
        "frames": _frame_rows(result.get("frames") or []),
        "timeline": timeline_chart(result),
        "metadata": result.get("metadata") if isinstance(result.get("metadata"), dict) else None,
        "timings": _timing_rows(timings if isinstance(timings, dict) else {}),
        "image_model": models_used.get("image")
        or (scan.image_model_version.label if scan.image_model_version else None),
        "video_model": models_used.get("video")
        or (scan.video_model_version.label if scan.video_model_version else None),
        "notes": [note for note in result.get("notes") or [] if isinstance(note, str)],
        "progress": progress,
        "progress_percent": _progress_percent(progress),
    }


def _progress_percent(progress: dict[str, Any]) -> int | None:
    done, total = progress.get("frames_done"), progress.get("frames_total")
    if isinstance(done, int) and isinstance(total, int) and total > 0:
        return max(0, min(100, round(done / total * 100)))
    return None


@login_required
@require_http_methods(["GET"])
def detail(request: HttpRequest, scan_id: Any) -> HttpResponse:
    """Everything known about one scan; a queued or running one refreshes itself (static/js/scan.js)."""
    scan = _scan_or_404(request, scan_id)
    return render(request, "scans/detail.html", _detail_context(scan))


@login_required
@require_POST
def delete(request: HttpRequest, scan_id: Any) -> HttpResponse:
    """Remove the scan and its stored file."""
    scan = _scan_or_404(request, scan_id)
    filename = scan.original_filename
    scan_delete(scan=scan)
    messages.success(request, f"“{filename}” and its results were deleted.")
    return redirect("scans:dashboard")


def _download_filename(scan: Scan) -> str:
    """The client's file name reduced to something harmless in a header; a neutral name if nothing is left."""
    name = PurePath(scan.original_filename.replace("\\", "/")).name
    name = "".join(
        character for character in name if unicodedata.category(character)[0] != "C" and character not in '"\\/;'
    ).strip()[:150]
    if not name or name.startswith("."):
        return f"scan-{scan.id}{PurePath(scan.file.name).suffix}"
    return name


@login_required
@require_http_methods(["GET", "HEAD"])
def scan_file(request: HttpRequest, scan_id: Any) -> HttpResponse:
    """Stream the original upload to its owner only; it is never reachable through a public URL."""
    scan = _scan_or_404(request, scan_id)
    streamable = scan.content_type in STREAMABLE_CONTENT_TYPES
    # Opened directly, the file gets no scripts, plugins or same-origin rights whatever it turns out to be.
    return private_file_response(
        storage=scan.file.storage,
        name=scan.file.name,
        content_type=scan.content_type if streamable else "application/octet-stream",
        download_name=_download_filename(scan),
        as_attachment=not streamable,
    )


@login_required
@require_http_methods(["GET", "HEAD"])
def evidence(request: HttpRequest, scan_id: Any, name: str) -> HttpResponse:
    """One evidence image of a scan (face crop, heatmap, key frame), to its owner only; unrecorded names are 404."""
    scan = _scan_or_404(request, scan_id)
    return evidence_file_response(scan=scan, name=name)


@login_required
@require_http_methods(["GET"])
def export_json(request: HttpRequest, scan_id: Any) -> HttpResponse:
    """The scan as a JSON document (its identity, models and full result), as a download."""
    scan = _scan_or_404(request, scan_id)
    return export_response(
        content=export_json_bytes(scan=scan), content_type="application/json", filename=f"unmask-scan-{scan.id}.json"
    )


@login_required
@require_http_methods(["GET"])
def export_pdf(request: HttpRequest, scan_id: Any) -> HttpResponse:
    """The scan as a one-page PDF report, as a download."""
    scan = _scan_or_404(request, scan_id)
    return export_response(
        content=scan_export_pdf(scan=scan), content_type="application/pdf", filename=f"unmask-scan-{scan.id}.pdf"
    )


@login_required
@require_http_methods(["GET"])
def export_csv(request: HttpRequest) -> HttpResponse:
    """The user's history as CSV, one row per scan, with the same filters as the dashboard."""
    filters = ScanFilterForm(request.GET).selected_filters() if request.GET else {}
    scans = scan_list_for_user(user=request.user, filters=filters)
    return export_response(
        content=scans_export_csv(scans=scans), content_type="text/csv; charset=utf-8", filename="unmask-scans.csv"
    )


@login_required
@require_POST
def delete_many(request: HttpRequest) -> HttpResponse:
    """Delete the scans ticked in the history (only the user's own) in one POST."""
    form = ScanBulkDeleteForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("scans:dashboard")
    deleted = len(scans_delete_many(owner=request.user, scan_ids=form.cleaned_data["scan_ids"]))
    messages.success(
        request,
        f"{deleted} scan{'' if deleted == 1 else 's'} and {'its' if deleted == 1 else 'their'} results were deleted.",
    )
    return redirect("scans:dashboard")
