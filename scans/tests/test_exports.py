"""Exports: one scan as JSON and as a one-page PDF, the history as CSV; owner only, filters respected."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import jsonschema
import pytest
from django.urls import reverse

from scans.exports import CSV_COLUMNS, EXPORT_JSON_SCHEMA_PATH, EXPORT_SCHEMA, scans_export_csv
from scans.models import Scan
from scans.services import scan_create
from scans.tests.uploads import face_photo, make_scan_row, upload

pytestmark = pytest.mark.django_db


def _pdf_page_count(content: bytes) -> int:
    """Pages in a PDF, counted from its page objects (`/Type /Page`, not `/Pages`)."""
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", content))


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


def test_the_pdf_report_is_one_page(client, alice, analysed_photo):
    client.force_login(alice)

    response = client.get(reverse("scans:export-pdf", args=[analysed_photo.id]))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    assert _pdf_page_count(response.content) == 1


def test_the_api_exports_json_and_pdf_with_a_token(alice, analysed_photo, api_client_for):
    client = api_client_for(alice)

    document = client.get(reverse("api:scan-export-json", args=[analysed_photo.id])).json()
    report = client.get(reverse("api:scan-export-pdf", args=[analysed_photo.id]))

    validate_export(document)
    assert document["scan"]["id"] == str(analysed_photo.id)
    assert report.content.startswith(b"%PDF-") and _pdf_page_count(report.content) == 1


def test_a_video_report_with_a_timeline_is_one_page(alice, data_dir, tiny_models, run_worker, settings, client):
    settings.UNMASK_VIDEO_FRAMES = 8
    clip = sorted((data_dir / "videos" / "celebdf" / "fake").glob("*.mp4"))[0]
    scan = scan_create(owner=alice, uploaded_file=upload(Path(clip).read_bytes(), clip.name))
    run_worker()
    client.force_login(alice)

    response = client.get(reverse("scans:export-pdf", args=[scan.id]))
    document = client.get(reverse("scans:export-json", args=[scan.id])).json()

    assert _pdf_page_count(response.content) == 1
    validate_export(document)
    assert document["scan"]["kind"] == "video" and document["result"]["faces"][0]["frame_scores"]


def test_a_failed_or_queued_scan_still_exports(client, alice):
    failed = make_scan_row(alice, status=Scan.Status.FAILED, error_message="The file is corrupt.")
    client.force_login(alice)

    report = client.get(reverse("scans:export-pdf", args=[failed.id]))
    document = json.loads(client.get(reverse("scans:export-json", args=[failed.id])).content)

    assert _pdf_page_count(report.content) == 1
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
