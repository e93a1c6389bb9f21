"""Scan API (DRF): thin views that validate input, call a selector or service and serialise the answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ml.result import Analysis, ScoredFace, TrackResult, VideoScoring
from newsroom.models import Case
from newsroom.selectors import case_get_for_user
from newsroom.services import ActionRefused, case_for_filing
from scans.evidence import evidence_file_response, evidence_names
from scans.exports import export_response, scan_export_data, scan_export_pdf, scan_export_pdf_filename, scans_export_csv
from scans.intake import upload_attempt
from scans.models import Scan
from scans.ratelimit import UploadThrottled
from scans.reviews import review_data, scan_review_current
from scans.selectors import platform_health, scan_get_for_user, scan_list_for_user, scan_video_scoring
from scans.services import (
    SCAN_DELETE_OWNER_ONLY,
    SCAN_MOVE_OWNER_ONLY,
    scan_create,
    scan_create_from_url,
    scan_delete,
    scan_move_to_case,
    scans_delete_many,
)
from scans.upload_handlers import ScanUploadHandler
from scans.uploads import UploadRejected
from scans.url_fetch import FetchFailed, source_url_check
from scans.wording import MANIPULATION_EXPLAINED, scoring_sentence, verdict_counts_text
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
    owner = serializers.CharField(source="owner.username", help_text="Who uploaded the scan.")
    case = serializers.UUIDField(
        source="case_id", allow_null=True, help_text="The team case the scan is filed in; null: the owner's own space."
    )
    review_label = serializers.SerializerMethodField(
        help_text="The current reviewer label (confirmed_fake, confirmed_real, disputed), or null: not reviewed."
    )

    class Meta:
        model = Scan
        fields = [
            "id",
            "url",
            "page_url",
            "owner",
            "case",
            "source_url",
            "review_label",
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

    def get_review_label(self, scan: Scan) -> str | None:
        review = scan_review_current(scan=scan)
        return review.label if review else None


class ManipulationOutputSerializer(serializers.Serializer):
    """Which kind of fake a face most resembles (models with the manipulation-type head only)."""

    most_likely = serializers.CharField(help_text="The most likely type: face_swap, gan or diffusion.")
    probability = serializers.FloatField(help_text="Its probability under the manipulation-type head.")
    distribution = serializers.DictField(
        child=serializers.FloatField(), help_text="Every type the head knows, with its probability."
    )


class KeyFrameOutputSerializer(serializers.Serializer):
    """A frame that drove a person's verdict."""

    index = serializers.IntegerField(help_text="Frame number in the video.")
    time_s = serializers.FloatField(allow_null=True)
    fake_probability = serializers.FloatField()
    url = serializers.URLField(allow_null=True, help_text="Its thumbnail, with the face boxed.")


class EvidenceFaceOutputSerializer(serializers.Serializer):
    """A face (photo) or tracked person (video): where, how likely fake, and the images that explain it."""

    index = serializers.IntegerField(help_text="From 0, as stored.")
    number = serializers.IntegerField(help_text="From 1: how the pages and the PDF name this face or person.")
    box = serializers.ListField(child=serializers.IntegerField(), help_text="[x, y, width, height] in pixels.")
    fake_probability = serializers.FloatField(help_text="The score the verdict comes from.")
    verdict = serializers.CharField(
        help_text="real, fake or uncertain: from the fake probability, or uncertain when out of scope."
    )
    out_of_scope = serializers.CharField(
        allow_null=True, help_text="Why this face cannot be judged reliably (its verdict is then uncertain)."
    )
    score_explanation = serializers.CharField(
        required=False, help_text="Videos: one sentence on how the person's score was made from their frames."
    )
    frames_over_threshold = serializers.IntegerField(
        required=False, allow_null=True, help_text="Videos: how many of the person's frames reach the frame threshold."
    )
    manipulation = ManipulationOutputSerializer(allow_null=True, help_text=MANIPULATION_EXPLAINED)
    crop_url = serializers.URLField(allow_null=True)
    heatmap_url = serializers.URLField(allow_null=True)
    key_frames = KeyFrameOutputSerializer(many=True, required=False, help_text="Videos only.")


class TimelinePointOutputSerializer(serializers.Serializer):
    frame = serializers.IntegerField()
    time_s = serializers.FloatField(allow_null=True)
    fake_probability = serializers.FloatField()


class TimelineOutputSerializer(serializers.Serializer):
    """One person's fake probability per analysed frame."""

    track = serializers.IntegerField()
    verdict = serializers.CharField()
    points = TimelinePointOutputSerializer(many=True)


class DecisionOutputSerializer(serializers.Serializer):
    threshold = serializers.FloatField()
    uncertain_low = serializers.FloatField()
    uncertain_high = serializers.FloatField()


class ScoringOutputSerializer(serializers.Serializer):
    """How a video version made each person's score from their frame scores."""

    method = serializers.CharField(help_text="The frame aggregate: mean_logit, trimmed_mean_logit, ...")
    frame_threshold = serializers.FloatField(help_text="A frame counts as fake at or above this score.")
    sequence_weight = serializers.FloatField(help_text="The sequence model's share of the score (0: none).")
    trim = serializers.FloatField(required=False, allow_null=True)


class EvidenceOutputSerializer(serializers.Serializer):
    """Per face or person the evidence URLs, and for videos the per-frame timelines."""

    summary = serializers.CharField(allow_blank=True, help_text='"2 people, 1 likely fake" (people are tracks).')
    scoring = ScoringOutputSerializer(allow_null=True, help_text="Videos only; null for photos.")
    faces = EvidenceFaceOutputSerializer(many=True)
    timeline = TimelineOutputSerializer(many=True, allow_null=True, help_text="Videos only; null for photos.")
    decision = DecisionOutputSerializer(allow_null=True)
    heatmap_method = serializers.CharField(allow_null=True)


def evidence_for_api(
    *, analysis: Analysis, url_for: Callable[[str], str], scoring: VideoScoring | None = None
) -> dict[str, Any]:
    """The `evidence` of a scan in the API's shape (EvidenceOutputSerializer); `url_for(name)` turns a recorded
    evidence name into an absolute URL of the caller's choosing. It says what the page and the PDF say: the
    score each person's verdict comes from, how it was made (`scoring`), and the frames that drove it."""
    recorded = evidence_names(analysis)

    def url(name: str | None) -> str | None:
        return url_for(name) if name in recorded else None

    fps = analysis.media.fps if analysis.media.fps and analysis.media.fps > 0 else None
    faces, timelines = [], []
    for face in analysis.faces:
        entry = _evidence_face(face, url)
        if isinstance(face, TrackResult):
            entry["score_explanation"] = scoring_sentence(face, scoring)
            entry["frames_over_threshold"] = (
                None if scoring is None else scoring.frames_over_threshold(face.frame_scores)
            )
            entry["key_frames"] = [
                {
                    "index": frame.index,
                    "time_s": frame.time_s,
                    "fake_probability": frame.fake_probability,
                    "url": url(frame.image),
                }
                for frame in face.key_frames
            ]
            timelines.append(
                {
                    "track": face.index,
                    "verdict": face.verdict,
                    "points": [
                        {"frame": frame, "time_s": round(frame / fps, 3) if fps else None, "fake_probability": score}
                        for frame, score in zip(face.frame_indices, face.frame_scores, strict=False)
                    ],
                }
            )
        faces.append(entry)
    return {
        "summary": verdict_counts_text(analysis.faces, video=analysis.is_video) if analysis.faces else "",
        "scoring": None if scoring is None else scoring.to_json(),
        "faces": faces,
        "timeline": timelines if analysis.is_video else None,
        "decision": None if analysis.decision is None else analysis.decision.to_json(),
        "heatmap_method": analysis.explanation.method if recorded else None,
    }


def _evidence_face(face: ScoredFace, url: Callable[[str | None], str | None]) -> dict[str, Any]:
    return {
        "index": face.index,
        "number": face.index + 1,
        "box": list(face.box),
        "fake_probability": face.fake_probability,
        "verdict": face.verdict,
        "out_of_scope": face.out_of_scope,
        "manipulation": None if face.manipulation is None else face.manipulation.to_json(),
        "crop_url": url(face.crop),
        "heatmap_url": url(face.heatmap),
    }


class ReviewOutputSerializer(serializers.Serializer):
    """A human decision on a scan, shown above the model's verdict."""

    label = serializers.CharField(help_text="confirmed_fake, confirmed_real or disputed.")
    label_text = serializers.CharField()
    note = serializers.CharField(allow_blank=True)
    reviewer = serializers.CharField(help_text="The reviewer's username.")
    reviewed_at = serializers.DateTimeField()
    previous_label = serializers.CharField(allow_null=True, help_text="The label this one replaced, if any.")
    previous_label_text = serializers.CharField(allow_null=True)
    text = serializers.CharField(help_text='"Reviewed: confirmed fake by anna, 1 Dec 2026 10:40 UTC".')


class ScanDetailOutputSerializer(ScanSummaryOutputSerializer):
    """One scan in full: progress while it runs, the result and the model versions once it is done."""

    review = serializers.SerializerMethodField()

    error = serializers.CharField(source="error_message")
    models = serializers.SerializerMethodField()
    evidence = serializers.SerializerMethodField()
    faces = serializers.JSONField(
        read_only=True,
        help_text="The faces (photo) or tracked people (video) as stored, each with its `manipulation`: which "
        "kind of fake it most resembles (`most_likely`, `probability`, `distribution`), or null for a model "
        "without that head. The verdict comes from `fake_probability` only.",
    )
    result = serializers.JSONField(
        read_only=True,
        help_text="The stored analysis document (scans/schemas/scan-export.schema.json, `result`); empty until done.",
    )

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
            "review",
        ]
        read_only_fields = fields

    def get_models(self, scan: Scan) -> dict[str, Any]:
        return {
            "image": _model_version_data(scan.image_model_version),
            "video": _model_version_data(scan.video_model_version),
        }

    @extend_schema_field(ReviewOutputSerializer(allow_null=True))
    def get_review(self, scan: Scan) -> dict[str, Any] | None:
        return review_data(scan_review_current(scan=scan))

    @extend_schema_field(EvidenceOutputSerializer)
    def get_evidence(self, scan: Scan) -> dict[str, Any]:
        request = self.context["request"]
        analysis = scan.analysis
        evidence = evidence_for_api(
            analysis=analysis,
            scoring=scan_video_scoring(scan=scan, analysis=analysis),
            url_for=lambda name: request.build_absolute_uri(reverse("api:scan-evidence", args=[scan.pk, name])),
        )
        return EvidenceOutputSerializer(evidence).data


class ScanListApi(APIView):
    """GET: the caller's own scans, newest first, paginated and filtered. POST: upload a file to scan."""

    # JSON too, for a scan by URL (`{"source_url": ...}`).
    parser_classes = [MultiPartParser, FormParser, JSONParser]

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
        case = serializers.UUIDField(
            required=False,
            help_text="A case of one of your teams: every scan filed in it, whoever uploaded it (instead of yours).",
        )

    class LinkSerializer(serializers.Serializer):
        source_url = serializers.URLField(
            max_length=2000,
            help_text="Instead of `file`: a link to an image, a video, or a page that embeds one (og:video, og:image, "
            "<video>, <source>), or a video site's page that yt-dlp resolves (one progressive file of at most 1080p, "
            "no HLS or DASH streams). A worker downloads it (status `fetching`), then it is scanned like an upload.",
        )
        case = serializers.UUIDField(required=False, allow_null=True)

    class InputSerializer(serializers.Serializer):
        # Empty files pass here so that scan_create gives its own reason, like any other rejected content.
        file = serializers.FileField(allow_empty_file=True, max_length=None, use_url=False)
        case = serializers.UUIDField(
            required=False,
            allow_null=True,
            help_text="File the scan into this case of one of your teams (owners and analysts; an open case).",
        )

    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        _case_of_filters_or_404(request, filters.validated_data)
        # A list row needs none of the JSON documents: a video's result alone can run to hundreds of kilobytes.
        scans = (
            scan_list_for_user(user=request.user, filters=filters.validated_data)
            .defer("result", "faces", "timings", "progress")
            .prefetch_related("reviews")
        )
        paginator = ScanPagination()
        page = paginator.paginate_queryset(scans, request, view=self)
        data = ScanSummaryOutputSerializer(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)

    def post(self, request: Request) -> Response:
        try:
            # The size is checked before `request.data`, which reads the whole body.
            with upload_attempt(owner=request.user, content_length=request.META.get("CONTENT_LENGTH")) as attempt:
                if "source_url" in request.data:
                    scan = attempt.accept(_scan_from_link(request, self.LinkSerializer(data=request.data)))
                    data = ScanDetailOutputSerializer(scan, context={"request": request}).data
                    return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})
                upload = self.InputSerializer(data=request.data)
                if not upload.is_valid():
                    # Every refusal of an upload answers {"detail": ...}, a missing field too.
                    return Response({"detail": _upload_error(upload.errors)}, status=status.HTTP_400_BAD_REQUEST)
                case = _case_for_upload(request, upload.validated_data.get("case"))
                scan = attempt.accept(
                    scan_create(owner=request.user, uploaded_file=upload.validated_data["file"], case=case)
                )
        except UploadRejected as exc:
            return Response({"detail": exc.message}, status=exc.status_code)
        except UploadThrottled as exc:
            return Response(
                {"detail": exc.message},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(exc.retry_after)},
            )
        data = ScanDetailOutputSerializer(scan, context={"request": request}).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})


class ScanDetailApi(APIView):
    """GET: one scan the caller may see (their own, or one in a case of their team). PATCH `{"case": ...}`: file it
    into a case or (null) back into the owner's space. DELETE: remove it and its file. Both are the owner's alone
    (403 for the team's other members); a scan the caller cannot see is a 404."""

    class MoveSerializer(serializers.Serializer):
        case = serializers.UUIDField(
            allow_null=True, help_text="A case of one of your teams (owner or analyst, open); null: your own space."
        )

    def get(self, request: Request, scan_id: str) -> Response:
        scan = _own_scan_or_404(request, scan_id)
        return Response(ScanDetailOutputSerializer(scan, context={"request": request}).data)

    def patch(self, request: Request, scan_id: str) -> Response:
        scan = _own_scan_or_404(request, scan_id)
        move = self.MoveSerializer(data=request.data)
        move.is_valid(raise_exception=True)
        try:
            if scan.owner_id != request.user.pk:
                raise ActionRefused(SCAN_MOVE_OWNER_ONLY, status_code=403)
            case_id = move.validated_data["case"]
            case = None if case_id is None else case_for_filing(user=request.user, case_id=case_id)
            scan = scan_move_to_case(scan=scan, actor=request.user, case=case)
        except ActionRefused as exc:
            return Response({"detail": exc.message}, status=exc.status_code)
        return Response(ScanDetailOutputSerializer(scan, context={"request": request}).data)

    def delete(self, request: Request, scan_id: str) -> Response:
        scan = _own_scan_or_404(request, scan_id)
        if scan.owner_id != request.user.pk:
            return Response({"detail": SCAN_DELETE_OWNER_ONLY}, status=status.HTTP_403_FORBIDDEN)
        scan_delete(scan=scan, actor=request.user)
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
            content=scan_export_pdf(scan=scan),
            content_type="application/pdf",
            filename=scan_export_pdf_filename(scan=scan),
        )


class ScanExportCsvApi(APIView):
    """GET: the caller's scans as CSV (one row per scan), with the same filters as the list."""

    def get(self, request: Request) -> HttpResponse:
        filters = ScanListApi.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        _case_of_filters_or_404(request, filters.validated_data)
        scans = scan_list_for_user(user=request.user, filters=filters.validated_data)
        return export_response(
            content=scans_export_csv(scans=scans), content_type="text/csv; charset=utf-8", filename="unmask-scans.csv"
        )


def _upload_error(errors: dict[str, Any]) -> str:
    """One sentence for an upload that is not a file in the `file` field."""
    if "file" not in errors and "case" in errors:
        return "`case` must be the id of a case of one of your teams."
    field_errors = errors.get("file") or []
    codes = {getattr(error, "code", None) for error in field_errors}
    if "required" in codes or "invalid" in codes or not field_errors:
        return "Send the file to scan as multipart/form-data in a field named `file`."
    return str(field_errors[0])


def _scan_from_link(request: Request, link: serializers.Serializer) -> Scan:
    """A scan by URL from a validated link (refusals as `UploadRejected`, so the quota unit is given back)."""
    if request.FILES:
        raise UploadRejected("Send either a file or a `source_url`, not both.")
    if not link.is_valid():
        errors = link.errors
        if "source_url" in errors:
            raise UploadRejected(f"`source_url`: {errors['source_url'][0]} Give a full http:// or https:// link.")
        raise UploadRejected("`case` must be the id of a case of one of your teams.")
    source_url = link.validated_data["source_url"]
    try:
        source_url_check(source_url)
    except FetchFailed as exc:
        raise UploadRejected(f"This link cannot be scanned: {exc.message}") from None
    case = _case_for_upload(request, link.validated_data.get("case"))
    return scan_create_from_url(owner=request.user, source_url=source_url, case=case)


def _case_for_upload(request: Request, case_id: Any) -> Case | None:
    """The case an upload asks to be filed into, refused as an `UploadRejected` (so its quota unit is given back)."""
    if case_id is None:
        return None
    try:
        return case_for_filing(user=request.user, case_id=case_id)
    except ActionRefused as exc:
        raise UploadRejected(exc.message, status_code=exc.status_code) from None


def _case_of_filters_or_404(request: Request, filters: dict[str, Any]) -> None:
    """A `case` filter naming a case the caller cannot see is a 404, like the case itself."""
    if filters.get("case") is None:
        return
    try:
        case_get_for_user(user=request.user, case_id=filters["case"])
    except Case.DoesNotExist:
        raise NotFound("No such case.") from None


def _own_scan_or_404(request: Request, scan_id: str) -> Scan:
    try:
        return scan_get_for_user(user=request.user, scan_id=scan_id)
    except Scan.DoesNotExist:
        raise NotFound("No such scan.") from None
