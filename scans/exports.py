"""Exports of scans: one scan as JSON or as a PDF report, and a history as CSV.

The PDF is laid out by `scans.report_pdf` (ReportLab). Everything comes from the scan row, read through
`Scan.analysis`, and its stored evidence; nothing is recomputed. The JSON export's `result` is the stored
analysis document itself.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.http import HttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header

from ml.result import ScoredFace, deciding_face
from scans.reviews import scan_review_current, scan_review_data
from scans.wording import VERDICT_HEADLINES

if TYPE_CHECKING:
    from scans.models import Scan

EXPORT_SCHEMA = "unmask.scan/1"
# The JSON Schema (draft 2020-12) that every JSON export validates against; its `$id` is EXPORT_SCHEMA.
EXPORT_JSON_SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "scan-export.schema.json"
CSV_COLUMNS = (
    "id",
    "uploaded_at",
    "file_name",
    "kind",
    "status",
    "verdict",
    "fake_probability",
    # Which kind of fake the deciding (most suspicious) face most resembles; empty without the model's head.
    "most_like",
    "most_like_probability",
    "faces",
    "sha256",
    "size_bytes",
    "image_model",
    "video_model",
    "finished_at",
    "reused_from",
    "error",
    # The current reviewer label (newsroom reviews); empty when nobody has reviewed the scan.
    "review_label",
    "reviewed_by",
    "reviewed_at",
    "review_note",
    # Scans by URL: the link given (empty for an upload).
    "source_url",
)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection through a file name).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment else None


def _model_label(model_version: Any) -> str | None:
    return model_version.label if model_version is not None else None


def scan_export_data(*, scan: Scan) -> dict[str, Any]:
    """One scan as a JSON-serialisable document: the file's identity, its state, its models, its reviewer labels
    (current and history) and its full result."""
    reviews = scan_review_data(scan=scan)
    return {
        "schema": EXPORT_SCHEMA,
        "exported_at": timezone.now().isoformat(),
        "scan": {
            "id": str(scan.id),
            "original_filename": scan.original_filename,
            "kind": scan.kind,
            "content_type": scan.content_type,
            "size_bytes": scan.size_bytes,
            "sha256": scan.sha256,
            "status": scan.status,
            "verdict": scan.verdict or None,
            "verdict_text": VERDICT_HEADLINES.get(scan.verdict),
            "fake_probability": scan.fake_probability,
            "error": scan.error_message or None,
            "created_at": _iso(scan.created_at),
            "started_at": _iso(scan.started_at),
            "finished_at": _iso(scan.finished_at),
            "reused_from": str(scan.reused_from_id) if scan.reused_from_id else None,
            "source_url": scan.source_url or None,
            "media_url": scan.media_url or None,
        },
        "models": {"image": _model_label(scan.image_model_version), "video": _model_label(scan.video_model_version)},
        "review": reviews["current"],
        "review_history": reviews["history"],
        "result": scan.result,
    }


# --- CSV ---------------------------------------------------------------------------------------------


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def scans_export_csv(*, scans: Iterable[Scan]) -> str:
    """The scans as CSV text, one row per scan in the given order, with a header row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for scan in scans:
        faces = scan.analysis.faces
        review = scan_review_current(scan=scan)
        guess = _deciding_face(faces).manipulation if faces else None
        row = (
            str(scan.id),
            _iso(scan.created_at),
            scan.original_filename,
            scan.kind,
            scan.status,
            scan.verdict,
            "" if scan.fake_probability is None else f"{scan.fake_probability:.6f}",
            "" if guess is None else guess.most_likely,
            "" if guess is None else f"{guess.probability:.6f}",
            len(faces) if scan.status == "done" else "",
            scan.sha256,
            scan.size_bytes,
            _model_label(scan.image_model_version) or "",
            _model_label(scan.video_model_version) or "",
            _iso(scan.finished_at) or "",
            str(scan.reused_from_id) if scan.reused_from_id else "",
            scan.error_message,
            review.label if review else "",
            review.reviewer_name if review else "",
            _iso(review.created_at) if review else "",
            review.note if review else "",
            scan.source_url,
        )
        writer.writerow([_csv_cell(value) for value in row])
    return buffer.getvalue()


def _deciding_face(faces: tuple[ScoredFace, ...]) -> ScoredFace:
    """The face or person the scan's verdict and probability come from (`ml.result.deciding_face`)."""
    return deciding_face(faces)


# --- PDF ---------------------------------------------------------------------------------------------


def scan_export_pdf(*, scan: Scan, with_original: bool = True) -> bytes:
    """The scan's PDF report (laid out in `scans.report_pdf`); without the original, a photo's picture is left out."""
    from scans.report_pdf import scan_report_pdf

    return scan_report_pdf(scan=scan, with_original=with_original)


def scan_export_pdf_filename(*, scan: Scan) -> str:
    """The PDF's download name: the original name and the analysis date (`scans.report_pdf.report_filename`)."""
    from scans.report_pdf import report_filename

    return report_filename(scan=scan)


def export_response(*, content: bytes | str, content_type: str, filename: str) -> HttpResponse:
    """An export as a download: attachment, never sniffed, never cached by shared caches."""
    response = HttpResponse(content, content_type=content_type)
    # Django quotes the name, and adds an RFC 5987 `filename*` for one that is not plain ASCII.
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


def export_json_bytes(*, scan: Scan) -> bytes:
    """The JSON export of one scan, pretty-printed UTF-8."""
    return json.dumps(scan_export_data(scan=scan), indent=2, ensure_ascii=False).encode()
