"""Exports: one scan as JSON and as a PDF report, the history as CSV; owner only, filters respected."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import jsonschema
import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone

from scans.exports import CSV_COLUMNS, EXPORT_JSON_SCHEMA_PATH, EXPORT_SCHEMA, scans_export_csv
from scans.models import Scan
from scans.services import scan_create
from scans.tests.uploads import face_photo, make_scan_row, upload
from scans.wording import VERDICT_HEADLINES, percent_text

pytestmark = pytest.mark.django_db
ARTIFACTS = Path(django_settings.BASE_DIR) / "test-artifacts"


def _pdf_page_count(content: bytes) -> int:
    """Pages in a PDF, counted from its page objects (`/Type /Page`, not `/Pages`)."""
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", content))


def _pdf_text_runs(content: bytes) -> list[dict]:
    """Every run of text in the PDF with its page, left edge and width in points, and the page's width."""
    from pypdf import PdfReader
    from reportlab.pdfbase.pdfmetrics import stringWidth

    runs: list[dict] = []
    for number, page in enumerate(PdfReader(io.BytesIO(content)).pages, start=1):
        page_width = float(page.mediabox.width)

        def visit(text, matrix, text_matrix, font, size, _number=number, _page_width=page_width):
            if not text.strip() or font is None:
                return
            name = str(font.get("/BaseFont", "")).lstrip("/").split("+")[-1]
            scale = matrix[0] * text_matrix[0]
            left = matrix[4] + matrix[0] * text_matrix[4]
            width = stringWidth(text.rstrip("\n"), name, 1.0) * size * scale
            runs.append({"page": _number, "text": text, "left": left, "width": width, "page_width": _page_width})

        page.extract_text(visitor_text=visit)
    return runs


def _pdf_text(content: bytes) -> str:
    """The PDF's text with line breaks and repeated spaces folded, for phrases that wrap."""
    from pypdf import PdfReader

    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    return " ".join(text.split())


def _assert_text_fits_the_page(content: bytes) -> None:
    runs = _pdf_text_runs(content)
    assert runs
    for run in runs:
        assert run["left"] >= 0 and run["left"] + run["width"] <= run["page_width"] + 0.5, run


def validate_export(document: dict) -> None:
    """Raises unless the document validates against the published JSON Schema (formats checked too)."""
    schema = json.loads(EXPORT_JSON_SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).validate(
        document
    )


@pytest.fixture
def analysed_photo(alice, data_dir, tiny_models, run_worker) -> Scan:
    path = face_photo(data_dir)
    scan = scan_create(owner=alice, uploaded_file=upload(path.read_bytes(), path.name))
    run_worker()
    scan.refresh_from_db()
    assert scan.status == Scan.Status.DONE, scan.error_message
    return scan


def test_the_json_export_parses_and_carries_the_result(client, alice, analysed_photo):
    client.force_login(alice)

    response = client.get(reverse("scans:export-json", args=[analysed_photo.id]))

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    document = json.loads(response.content)
    validate_export(document)
    assert document["schema"] == EXPORT_SCHEMA == json.loads(EXPORT_JSON_SCHEMA_PATH.read_text())["$id"]
    assert document["result"]["faces"][0]["crop"] and document["result"]["faces"][0]["heatmap"]
    assert document["scan"]["sha256"] == analysed_photo.sha256
    assert document["scan"]["verdict"] == analysed_photo.verdict
    assert document["result"]["faces"][0]["box"] == analysed_photo.result["faces"][0]["box"]
    assert document["models"]["image"] == analysed_photo.image_model_version.label


def test_the_pdf_report_names_the_verdict_its_limits_and_the_models(client, alice, analysed_photo):
    client.force_login(alice)

    response = client.get(reverse("scans:export-pdf", args=[analysed_photo.id]))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    text = _pdf_text(response.content)
    assert VERDICT_HEADLINES[analysed_photo.verdict] in text
    assert "Limits: what this report cannot tell you" in text
    assert analysed_photo.image_model_version.label in text
    assert "%" in text and "100.0%" not in text and " 0.0%" not in text
    _assert_text_fits_the_page(response.content)


def test_the_pdf_is_named_after_the_original_file_and_the_analysis_date(client, alice, analysed_photo):
    client.force_login(alice)

    response = client.get(reverse("scans:export-pdf", args=[analysed_photo.id]))

    stem = Path(analysed_photo.original_filename).stem
    day = timezone.localtime(analysed_photo.finished_at).date().isoformat()
    assert response["Content-Disposition"] == f'attachment; filename="{stem}-report-{day}.pdf"'


def test_a_long_headline_and_file_name_wrap_inside_the_page(client, alice):
    name = "Interview-" + "very-long-unbroken-file-name-" * 7 + ".jpg"
    scan = make_scan_row(
        alice,
        status=Scan.Status.DONE,
        verdict=Scan.Verdict.NO_FACE,
        original_filename=name,
        result={"kind": "image", "verdict": "no_face", "fake_probability": None, "faces": [], "notes": ["x " * 300]},
    )
    client.force_login(alice)

    report = client.get(reverse("scans:export-pdf", args=[scan.id])).content

    assert VERDICT_HEADLINES[Scan.Verdict.NO_FACE] in _pdf_text(report)
    _assert_text_fits_the_page(report)


def test_the_api_exports_json_and_pdf_with_a_token(alice, analysed_photo, api_client_for):
    client = api_client_for(alice)

    document = client.get(reverse("api:scan-export-json", args=[analysed_photo.id])).json()
    report = client.get(reverse("api:scan-export-pdf", args=[analysed_photo.id]))

    validate_export(document)
    assert document["scan"]["id"] == str(analysed_photo.id)
    assert report.content.startswith(b"%PDF-") and _pdf_page_count(report.content) >= 1


def test_a_video_report_shows_the_score_that_decides_and_the_frames_behind_it(
    alice, data_dir, tiny_models, run_worker, settings, client
):
    settings.UNMASK_VIDEO_FRAMES = 8
    clip = sorted((data_dir / "videos" / "celebdf" / "fake").glob("*.mp4"))[0]
    scan = scan_create(owner=alice, uploaded_file=upload(Path(clip).read_bytes(), clip.name))
    run_worker()
    scan.refresh_from_db()
    client.force_login(alice)

    report = client.get(reverse("scans:export-pdf", args=[scan.id])).content
    document = client.get(reverse("scans:export-json", args=[scan.id])).json()

    validate_export(document)
    [person] = document["result"]["faces"]
    text = _pdf_text(report)
    assert f"Person 1: {percent_text(person['fake_probability'])}" in text
    assert "A sequence model that reads the frames in order contributed 50% of this score" in text
    assert "Timeline" in text and "frame threshold" in text
    assert document["result"]["scoring"]["sequence_weight"] == 0.5
    if person["key_frames"]:
        assert "Frames that drove person 1's verdict" in text
        assert f"frame {person['key_frames'][0]['index']}" in text
    _assert_text_fits_the_page(report)
    # Kept beside the browser test's screenshots, for a person to look at.
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "video-report.pdf").write_bytes(report)


def test_a_long_video_report_takes_more_than_one_page(client, alice):
    frames = list(range(0, 3000, 10))
    person = {
        "index": 0,
        "box": [10, 10, 80, 80],
        "fake_probability": 0.8,
        "verdict": "fake",
        "frame_indices": frames,
        "frame_scores": [0.5 + (index % 5) / 10 for index in range(len(frames))],
        "key_frames": [],
    }
    result = {
        "kind": "video",
        "verdict": "fake",
        "fake_probability": 0.8,
        "faces": [person],
        "frames": [
            {
                "index": frame,
                "time_s": frame / 25,
                "faces": [{"track": 0, "box": [10, 10, 80, 80], "fake_probability": 0.6}],
            }
            for frame in frames
        ],
        "media": {"width": 640, "height": 480, "fps": 25.0, "duration_s": 120.0, "frames_analyzed": len(frames)},
        "decision": {"threshold": 0.5, "uncertain_low": 0.4, "uncertain_high": 0.6},
        "scoring": {"method": "share_over_threshold", "frame_threshold": 0.7, "sequence_weight": 0.0},
    }
    scan = make_scan_row(
        alice, kind=Scan.Kind.VIDEO, status=Scan.Status.DONE, verdict="fake", fake_probability=0.8, result=result
    )
    client.force_login(alice)

    report = client.get(reverse("scans:export-pdf", args=[scan.id])).content

    assert _pdf_page_count(report) >= 2
    assert "the share of frames over the frame threshold" in _pdf_text(report)
    _assert_text_fits_the_page(report)


def test_a_failed_or_queued_scan_still_exports(client, alice):
    failed = make_scan_row(alice, status=Scan.Status.FAILED, error_message="The file is corrupt.")
    client.force_login(alice)

    report = client.get(reverse("scans:export-pdf", args=[failed.id]))
    document = json.loads(client.get(reverse("scans:export-json", args=[failed.id])).content)

    assert "The analysis failed: The file is corrupt." in _pdf_text(report.content)
    assert document["scan"]["error"] == "The file is corrupt."
    validate_export(document)


def test_the_csv_has_a_row_per_scan_and_respects_the_filters(client, alice, bob):
    make_scan_row(alice, original_filename="one.jpg", status=Scan.Status.DONE, verdict="fake", fake_probability=0.9)
    make_scan_row(alice, original_filename="two.jpg", status=Scan.Status.DONE, verdict="real", fake_probability=0.1)
    make_scan_row(bob, original_filename="bobs.jpg")
    client.force_login(alice)

    everything = list(csv.DictReader(io.StringIO(client.get(reverse("scans:export-csv")).content.decode())))
    fakes = list(
        csv.DictReader(io.StringIO(client.get(reverse("scans:export-csv"), {"verdict": "fake"}).content.decode()))
    )

    assert sorted(row["file_name"] for row in everything) == ["one.jpg", "two.jpg"]
    assert [row["file_name"] for row in fakes] == ["one.jpg"]
    assert fakes[0]["fake_probability"] == "0.900000"


def test_the_api_csv_needs_a_token_and_lists_only_the_callers_scans(alice, bob, api_client_for):
    make_scan_row(alice, original_filename="alice.jpg")
    make_scan_row(bob, original_filename="bob.jpg")

    response = api_client_for(alice).get(reverse("api:scan-export-csv"))

    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["file_name"] for row in rows] == ["alice.jpg"]
    assert api_client_for(None).get(reverse("api:scan-export-csv")).status_code == 401


def test_file_names_cannot_become_spreadsheet_formulas(alice):
    scan = make_scan_row(alice, original_filename='=HYPERLINK("http://evil")')

    rows = list(csv.reader(io.StringIO(scans_export_csv(scans=[scan]))))

    assert rows[0] == list(CSV_COLUMNS)
    assert rows[1][CSV_COLUMNS.index("file_name")].startswith("'=")


def test_exports_of_another_users_scan_are_404(client, bob, alice, api_client_for):
    scan = make_scan_row(alice)
    client.force_login(bob)

    for name in ("scans:export-json", "scans:export-pdf"):
        assert client.get(reverse(name, args=[scan.id])).status_code == 404
    for name in ("api:scan-export-json", "api:scan-export-pdf"):
        assert api_client_for(bob).get(reverse(name, args=[scan.id])).status_code == 404
        assert api_client_for(None).get(reverse(name, args=[scan.id])).status_code == 401
