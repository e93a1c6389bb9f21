"""Dashboard pages: upload + history, scan detail, delete, and the owner-only file stream."""

from __future__ import annotations

import unicodedata
from dataclasses import fields
from pathlib import PurePath
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from ml.result import Analysis, MediaInfo, ScoredFace, Timings, TrackResult, VideoScoring
from newsroom.models import Membership
from newsroom.selectors import case_choices_for_filing
from newsroom.services import ActionRefused, case_for_filing
from scans.charts import timeline_chart
from scans.evidence import evidence_file_response
from scans.exports import (
    export_json_bytes,
    export_response,
    scan_export_pdf,
    scan_export_pdf_filename,
    scans_export_csv,
)
from scans.forms import ScanBulkDeleteForm, ScanFilterForm, ScanUploadForm
from scans.intake import upload_attempt
from scans.media_types import STREAMABLE_CONTENT_TYPES
from scans.models import Scan
from scans.protected_media import private_file_response
from scans.ratelimit import UploadThrottled
from scans.reviews import scan_review_data
from scans.selectors import scan_get_for_user, scan_list_for_user, scan_team_role, scan_video_scoring
from scans.services import (
    SCAN_DELETE_OWNER_ONLY,
    SCAN_MOVE_OWNER_ONLY,
    scan_create,
    scan_create_from_url,
    scan_delete,
    scan_move_to_case,
    scans_delete_many,
)
from scans.uploads import UploadRejected, display_filename
from scans.url_fetch import FetchFailed, source_url_check
from scans.wording import (
    MANIPULATION_EXPLAINED,
    OUT_OF_SCOPE_HEADLINE,
    REVIEW_LABEL_TEXT,
    VERDICT_HEADLINES,
    manipulation_text,
    percent_text,
    scoring_sentence,
    verdict_counts_text,
)

HISTORY_PAGE_SIZE = 20
CONTRIBUTOR_ROLES = Membership.CONTRIBUTOR_ROLES

VERDICT_LABELS = dict(Scan.Verdict.choices)
# `total_s` is the analysis (decode to verdict), before the evidence is drawn.
TIMING_NAMES = {"total_s": "analysis total", "evidence_s": "evidence (heatmaps)"}


def _scan_or_404(request: HttpRequest, scan_id: Any) -> Scan:
    try:
        return scan_get_for_user(user=request.user, scan_id=scan_id)
    except Scan.DoesNotExist:
        # Another user's scan is indistinguishable from one that does not exist.
        raise Http404("No such scan.") from None


def share_links_for_page(scan: Scan) -> list[dict[str, Any]]:
    """The scan's share links as the page lists them: token prefix, state, views, expiry. Never their URL: only the
    token's digest is stored (the page that made a link shows its URL, once)."""
    now = timezone.now()
    return [
        {
            "pk": link.pk,
            "state": link.state(now),
            "token_prefix": link.token_prefix,
            "view_count": link.view_count,
            "include_original": link.include_original,
            "expires_at": link.expires_at,
            "created_by_name": link.created_by_name,
        }
        for link in scan.share_links.all()
    ]


def filing_choices(user: Any) -> list[tuple[str, str]]:
    """(case id, "team: case title") of the open cases `user` may file a scan into, for the upload and move forms."""
    return [(str(case.pk), f"{case.team.name}: {case.title}") for case in case_choices_for_filing(user=user)]


def _upload_form(request: HttpRequest) -> ScanUploadForm:
    choices = filing_choices(request.user)
    if request.method == "POST":
        return ScanUploadForm(request.POST, request.FILES, case_choices=choices)
    # A case page links here with its case chosen in the form.
    return ScanUploadForm(initial={"case": request.GET.get("file_into", "")}, case_choices=choices)


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
        # A refused upload is shown again with the name of the file that was chosen (a browser never
        # refills a file field), so the reviewer knows which file the error is about.
        "chosen_filename": _chosen_filename(upload_form),
    }
    return render(request, "scans/dashboard.html", context, status=status)


def _chosen_filename(upload_form: ScanUploadForm) -> str:
    uploaded = upload_form.files.get("file") if upload_form.is_bound else None
    return display_filename(uploaded.name) if uploaded is not None and uploaded.name else ""


@login_required
@require_http_methods(["GET", "POST"])
def dashboard(request: HttpRequest) -> HttpResponse:
    """The upload form and the user's scan history (newest first, filterable, paginated)."""
    if request.method == "GET":
        return _render_dashboard(request, _upload_form(request))
    upload_form = _upload_form(request)
    try:
        with upload_attempt(owner=request.user, content_length=request.META.get("CONTENT_LENGTH")) as attempt:
            if not upload_form.is_valid():
                return _render_dashboard(request, upload_form, status=400)
            case = None
            if upload_form.cleaned_data.get("case"):
                try:
                    case = case_for_filing(user=request.user, case_id=upload_form.cleaned_data["case"])
                except ActionRefused as refused:
                    upload_form.add_error("case", refused.message)
                    return _render_dashboard(request, upload_form, status=refused.status_code)
            source_url = upload_form.cleaned_data.get("source_url")
            if source_url:
                try:
                    source_url_check(source_url)
                except FetchFailed as refused:
                    upload_form.add_error("source_url", f"This link cannot be scanned: {refused.message}")
                    return _render_dashboard(request, upload_form, status=400)
                scan = attempt.accept(scan_create_from_url(owner=request.user, source_url=source_url, case=case))
            else:
                scan = attempt.accept(
                    scan_create(owner=request.user, uploaded_file=upload_form.cleaned_data["file"], case=case)
                )
    except UploadThrottled as throttled:
        upload_form.add_error(None, throttled.message)
        response = _render_dashboard(request, upload_form, status=429)
        response["Retry-After"] = str(throttled.retry_after)
        return response
    except UploadRejected as rejection:
        upload_form.add_error("file", rejection.message)
        return _render_dashboard(request, upload_form, status=rejection.status_code)
    if scan.status == Scan.Status.FETCHING:
        messages.success(
            request,
            "The link was accepted: its media is being downloaded, then it will be analysed.",
            extra_tags="while-running",
        )
    elif scan.reused_from_id:
        messages.success(
            request,
            f"“{scan.original_filename}” was already analysed with the same models, so its earlier result is shown.",
        )
    else:
        # Tagged so the detail page drops it once the scan has finished (static/js/scan.js).
        messages.success(
            request, f"“{scan.original_filename}” was uploaded and is queued for analysis.", extra_tags="while-running"
        )
    if request.headers.get("X-Requested-With") == "XMLHttpRequest":
        # The page's own upload (with its progress bar) goes to the scan itself: a redirect followed inside
        # the request would show, and so use up, the message above before the scan's page is opened.
        return JsonResponse({"url": reverse("scans:detail", args=[scan.id])}, status=201)
    return redirect("scans:detail", scan_id=scan.id)


def _meter(probability: float | None) -> float | None:
    """Width of a probability bar, in percent (the text beside it is `percent_text`)."""
    return None if probability is None else round(min(max(float(probability), 0.0), 1.0) * 100, 2)


def _box_style(box: tuple[int, ...], media: MediaInfo) -> str | None:
    """CSS placing `box` ([x, y, w, h] in source pixels) over the image as percentages of its size."""
    if not (media.width and media.height) or len(box) != 4:
        return None
    x, y, width, height = (float(value) for value in box)
    left = min(max(x / media.width * 100, 0.0), 100.0)
    top = min(max(y / media.height * 100, 0.0), 100.0)
    box_width = min(max(width / media.width * 100, 0.0), 100.0 - left)
    box_height = min(max(height / media.height * 100, 0.0), 100.0 - top)
    return f"left: {left:.2f}%; top: {top:.2f}%; width: {box_width:.2f}%; height: {box_height:.2f}%;"


def _face_row(face: ScoredFace, media: MediaInfo, scoring: VideoScoring | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        # People and faces are numbered from 1 wherever a person reads them (the stored index is from 0).
        "number": face.index + 1,
        "box": face.box,
        "box_style": _box_style(face.box, media),
        "confidence": None if face.confidence is None else percent_text(face.confidence),
        "percent": percent_text(face.fake_probability),
        "meter": _meter(face.fake_probability),
        "verdict": face.verdict,
        "verdict_label": VERDICT_LABELS.get(face.verdict, face.verdict or "—"),
        "out_of_scope": face.out_of_scope,
        "manipulation": manipulation_text(face.manipulation),
        "crop": face.crop,
        "heatmap": face.heatmap,
        "key_frames": [],
        "frame_bars": [],
    }
    if isinstance(face, TrackResult):
        frame_indices = face.frame_indices or range(len(face.frame_scores))
        row.update(
            n_frames=face.n_frames or None,
            scoring_sentence=scoring_sentence(face, scoring),
            frames_over=None if scoring is None else scoring.frames_over_threshold(face.frame_scores),
            sequence_percent=None if face.sequence_probability is None else percent_text(face.sequence_probability),
            aggregate_percent=None if face.aggregate_probability is None else percent_text(face.aggregate_probability),
            key_frames=[
                {
                    "index": frame.index,
                    "time_s": frame.time_s,
                    "image": frame.image,
                    "percent": percent_text(frame.fake_probability),
                }
                for frame in face.key_frames
            ],
            # Not strict: a result with mismatched lists still renders what pairs up instead of failing the page.
            frame_bars=[
                {"frame": frame, "percent": percent_text(score), "height": _meter(score)}
                for frame, score in zip(frame_indices, face.frame_scores, strict=False)
            ],
        )
    return row


def _frame_rows(analysis: Analysis) -> list[dict[str, Any]]:
    return [
        {
            "index": frame.index,
            "time_s": frame.time_s,
            "faces": [
                {"number": face.track + 1, "percent": percent_text(face.fake_probability)} for face in frame.faces
            ],
        }
        for frame in analysis.frames
    ]


def _timing_rows(timings: Timings) -> list[dict[str, Any]]:
    """The stage timings in the order the stages run (the fields' order)."""
    return [
        {"name": TIMING_NAMES.get(stage.name, stage.name.removesuffix("_s").replace("_", " ")), "seconds": seconds}
        for stage in fields(timings)
        if (seconds := getattr(timings, stage.name)) is not None
    ]


def _track_boxes(analysis: Analysis) -> dict[str, Any] | None:
    """What the video player's face overlay needs (static/js/scan.js): per person their box at each sampled
    frame's time, in the video's pixels."""
    if not analysis.is_video or not analysis.frames or not (analysis.media.width and analysis.media.height):
        return None
    verdicts = {face.index: face.verdict for face in analysis.faces}
    boxes: dict[int, list[list[float]]] = {}
    for frame in analysis.frames:
        if frame.time_s is None:
            continue
        for face in frame.faces:
            if len(face.box) == 4:
                boxes.setdefault(face.track, []).append([frame.time_s, *face.box])
    return {
        "width": analysis.media.width,
        "height": analysis.media.height,
        # Sampled frames are this far apart; the overlay holds a box for at most about one gap.
        "frame_gap_s": _frame_gap(analysis),
        "tracks": [
            {"number": track + 1, "verdict": verdicts.get(track, ""), "boxes": track_boxes}
            for track, track_boxes in sorted(boxes.items())
        ],
    }


def _frame_gap(analysis: Analysis) -> float:
    times = sorted({frame.time_s for frame in analysis.frames if frame.time_s is not None})
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False) if later > earlier]
    return round(max(gaps), 3) if gaps else 1.0


def _owner_urls(scan: Scan) -> dict[str, str]:
    """Where the result page's media, evidence and exports come from, for those who can see the scan."""
    return {
        # A scan by URL has no file until its media is downloaded.
        "file": reverse("scans:file", args=[scan.id]) if scan.file else "",
        # Evidence names are appended to this prefix (they are plain file names: `face-0-crop.jpg`).
        "evidence": reverse("scans:evidence", args=[scan.id, "_"])[:-1],
        "pdf": reverse("scans:export-pdf", args=[scan.id]),
        "json": reverse("scans:export-json", args=[scan.id]),
    }


def scan_detail_context(
    scan: Scan, *, user: Any, urls: dict[str, str] | None = None, shared: Any = None
) -> dict[str, Any]:
    """What the result page shows; `urls` and `shared` (a share link) make it the read-only shared view."""
    context = _detail_context(scan, user=user)
    context["urls"] = urls or _owner_urls(scan)
    context["shared"] = shared
    if shared is not None:
        context.update(can_review=False, can_share=False, share_links=[], move_choices=[])
    return context


def _detail_context(scan: Scan, *, user: Any) -> dict[str, Any]:
    analysis = scan.analysis
    is_owner = scan.owner_id == user.pk
    team_role = scan_team_role(scan=scan, user=user)
    reviews = scan_review_data(scan=scan)
    decision = analysis.decision
    progress = scan.progress or {}
    scoring = scan_video_scoring(scan=scan, analysis=analysis)
    out_of_scope = list(analysis.out_of_scope) if scan.verdict == Scan.Verdict.UNCERTAIN else []
    return {
        "scan": scan,
        "verdict_headline": OUT_OF_SCOPE_HEADLINE if out_of_scope else VERDICT_HEADLINES.get(scan.verdict, ""),
        "out_of_scope": out_of_scope,
        "percent": None if scan.fake_probability is None else percent_text(scan.fake_probability),
        "meter": _meter(scan.fake_probability),
        "counts": verdict_counts_text(analysis.faces, video=analysis.is_video) if analysis.faces else "",
        "media": analysis.media,
        "decision": {
            "threshold": percent_text(decision.threshold) if decision else None,
            "uncertain_low": percent_text(decision.uncertain_low) if decision else None,
            "uncertain_high": percent_text(decision.uncertain_high) if decision else None,
        },
        "scoring": scoring,
        "frame_threshold": None if scoring is None else percent_text(scoring.frame_threshold),
        "faces": [_face_row(face, analysis.media, scoring) for face in analysis.faces],
        "any_manipulation": any(face.manipulation for face in analysis.faces),
        "manipulation_explained": MANIPULATION_EXPLAINED,
        "frames": _frame_rows(analysis),
        "timeline": timeline_chart(analysis, scoring=scoring),
        "track_boxes": _track_boxes(analysis),
        "metadata": analysis.metadata,
        "timings": _timing_rows(analysis.timings),
        "image_model": analysis.models.image or (scan.image_model_version.label if scan.image_model_version else None),
        "video_model": analysis.models.video or (scan.video_model_version.label if scan.video_model_version else None),
        # The reasons of a downgrade are the headline's subtitle; the other notes are listed below it.
        "notes": [note for note in analysis.notes if note not in out_of_scope],
        "progress": progress,
        "progress_percent": _progress_percent(progress),
        # Team scans: who uploaded it, and what the viewer may do (only the uploader moves or deletes a scan).
        "is_owner": is_owner,
        "team_role": team_role,
        "move_choices": filing_choices(user) if is_owner else [],
        # A human decision is shown above the model's verdict, with its history.
        "review": reviews["current"],
        "review_history": reviews["history"],
        "can_review": scan.status == Scan.Status.DONE and (is_owner or team_role in CONTRIBUTOR_ROLES),
        # The same people make share links (newsroom.shares), of a finished scan.
        "can_share": scan.status == Scan.Status.DONE and (is_owner or team_role in CONTRIBUTOR_ROLES),
        "share_links": share_links_for_page(scan) if (is_owner or team_role in CONTRIBUTOR_ROLES) else [],
        "review_labels": REVIEW_LABEL_TEXT,
    }


def _progress_percent(progress: dict[str, Any]) -> int | None:
    total = progress.get("frames_total")
    if not total:
        return None
    return max(0, min(100, round(progress.get("frames_done", 0) / total * 100)))


@login_required
@require_http_methods(["GET"])
def detail(request: HttpRequest, scan_id: Any) -> HttpResponse:
    """Everything known about one scan; a queued or running one refreshes itself (static/js/scan.js)."""
    scan = _scan_or_404(request, scan_id)
    context = scan_detail_context(scan, user=request.user)
    return render(request, "scans/detail.html", context)


@login_required
@require_POST
def move(request: HttpRequest, scan_id: Any) -> HttpResponse:
    """File the scan into one of the owner's teams' open cases (`case`), or with an empty `case` back into their own
    space. Only the scan's owner can; the team's other members are told so."""
    scan = _scan_or_404(request, scan_id)
    case_id = request.POST.get("case", "").strip()
    try:
        if scan.owner_id != request.user.pk:
            raise ActionRefused(SCAN_MOVE_OWNER_ONLY, status_code=403)
        case = case_for_filing(user=request.user, case_id=case_id) if case_id else None
        scan_move_to_case(scan=scan, actor=request.user, case=case)
    except ActionRefused as refused:
        messages.error(request, refused.message)
    else:
        if case is None:
            messages.success(request, f"“{scan.original_filename}” is back in your own scans.")
        else:
            messages.success(request, f"“{scan.original_filename}” was filed into the case “{case.title}”.")
    return redirect("scans:detail", scan_id=scan.id)


@login_required
@require_POST
def delete(request: HttpRequest, scan_id: Any) -> HttpResponse:
    """Remove the scan and its stored file (its owner only)."""
    scan = _scan_or_404(request, scan_id)
    if scan.owner_id != request.user.pk:
        messages.error(request, SCAN_DELETE_OWNER_ONLY)
        return redirect("scans:detail", scan_id=scan.id)
    filename = scan.original_filename
    scan_delete(scan=scan, actor=request.user)
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
    if not scan.file:
        raise Http404("This scan's media has not been downloaded yet.")
    return scan_file_response(scan)


def scan_file_response(scan: Scan) -> HttpResponse:
    """The original upload, streamed when a browser can play it, else as a download (the caller checked access)."""
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
        content=scan_export_pdf(scan=scan), content_type="application/pdf", filename=scan_export_pdf_filename(scan=scan)
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
