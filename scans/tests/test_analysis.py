"""`scan_analyze` through the real worker: one decode per scan, the result stored as the typed analysis'
JSON, and the manipulation type carried from the model to the page, the API and the exports."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from django.urls import reverse

from ml.image_model import MANIPULATION_TYPES
from scans.models import Scan
from scans.services import scan_create
from scans.tests.test_exports import validate_export
from scans.tests.uploads import face_photo, make_scan_row, short_clip, upload
from training.models import ShadowResult
from training.services import model_version_shadow_start
from training.tests.versions import candidate_version

pytestmark = pytest.mark.django_db


def _analysed(owner, path: Path, run_worker) -> Scan:
    scan = scan_create(owner=owner, uploaded_file=upload(path.read_bytes(), path.name))
    run_worker()
    scan.refresh_from_db()
    assert scan.status == Scan.Status.DONE, scan.error_message
    return scan


""" + open('/tmp/progress_test.py').read().rstrip() + """


def test_a_scan_decodes_its_media_once_for_verdict_evidence_and_shadow(
    alice, data_dir, tiny_models, run_worker, settings, decodes
):
    settings.UNMASK_VIDEO_FRAMES = 8
    image_version, video_version = tiny_models
    # Candidates with crop rules of their own, so the pass must cut a second set of crops.
    for active in (image_version, video_version):
        rule = {**active.settings["crop_rule"], "margin": 0.3}
        model_version_shadow_start(model_version=candidate_version(active, version="wider", crop_rule=rule))
    photo = scan_create(owner=alice, uploaded_file=upload(face_photo(data_dir).read_bytes(), "face.jpg"))
    clip = scan_create(owner=alice, uploaded_file=upload(short_clip(data_dir).read_bytes(), "clip.mp4"))

    run_worker()

    photo.refresh_from_db()
    clip.refresh_from_db()
    assert (photo.status, clip.status) == ("done", "done")
    assert photo.result["evidence"]["files"] and clip.result["evidence"]["files"]
    assert photo.result["metadata"]["readable"] is True
    assert ShadowResult.objects.filter(scan__in=[photo, clip], agreed__isnull=False).count() == 2
    assert decodes == {"load_image": 1, "iter_video_frames": 1}


def test_the_stored_result_is_the_analysis_document_read_back_through_one_type(
    alice, data_dir, tiny_models, run_worker
):
    scan = _analysed(alice, face_photo(data_dir), run_worker)

    analysis = scan.analysis

    assert analysis.to_json() == scan.result
    assert analysis.faces[0].heatmap == scan.result["faces"][0]["heatmap"]
    assert analysis.timings.evidence_s > 0


def test_a_face_shows_the_manipulation_type_it_most_resembles(
    client, alice, data_dir, tiny_models, run_worker, api_client_for
):
    scan = _analysed(alice, face_photo(data_dir), run_worker)
    stored = scan.result["faces"][0]["manipulation"]
    client.force_login(alice)

    page = client.get(reverse("scans:detail", args=[scan.id])).content.decode()
    api_face = api_client_for(alice).get(reverse("api:scan-detail", args=[scan.id])).json()["evidence"]["faces"][0]
    document = client.get(reverse("scans:export-json", args=[scan.id])).json()
    exported = document["result"]["faces"][0]
    [row] = csv.DictReader(io.StringIO(client.get(reverse("scans:export-csv")).content.decode()))
    report = client.get(reverse("scans:export-pdf", args=[scan.id]))

    assert stored["most_likely"] in MANIPULATION_TYPES
    assert set(stored["distribution"]) == set(MANIPULATION_TYPES)
    assert f"({stored['probability']:.0%})" in page and "most like:" in page
    assert "data-manipulation-explained" in page and "the verdict comes from the fake probability only" in page.lower()
    assert api_face["manipulation"] == exported["manipulation"] == stored
    validate_export(document)
    assert row["most_like"] == stored["most_likely"]
    assert float(row["most_like_probability"]) == pytest.approx(stored["probability"])
    assert report.status_code == 200 and report.content.startswith(b"%PDF-")


def test_a_video_person_gets_the_mean_manipulation_type_of_their_frames(
    alice, data_dir, tiny_models, run_worker, settings
):
    settings.UNMASK_VIDEO_FRAMES = 8

    person = _analysed(alice, short_clip(data_dir), run_worker).result["faces"][0]

    assert person["manipulation"]["most_likely"] in MANIPULATION_TYPES
    assert sum(person["manipulation"]["distribution"].values()) == pytest.approx(1.0, abs=1e-4)


def test_a_model_without_the_manipulation_head_shows_no_type_and_nothing_breaks(
    client, alice, data_dir, tiny_models_without_head, run_worker, api_client_for, settings
):
    settings.UNMASK_VIDEO_FRAMES = 8
    photo = _analysed(alice, face_photo(data_dir), run_worker)
    clip = _analysed(alice, short_clip(data_dir), run_worker)
    client.force_login(alice)

    for scan in (photo, clip):
        page = client.get(reverse("scans:detail", args=[scan.id]))
        api = api_client_for(alice).get(reverse("api:scan-detail", args=[scan.id])).json()
        exported = json.loads(client.get(reverse("scans:export-json", args=[scan.id])).content)
        report = client.get(reverse("scans:export-pdf", args=[scan.id]))

        assert page.status_code == 200 and "most like:" not in page.content.decode()
        assert "data-manipulation-explained" not in page.content.decode()
        assert api["evidence"]["faces"][0]["manipulation"] is None
        assert exported["result"]["faces"][0]["manipulation"] is None
        validate_export(exported)
        assert report.status_code == 200
    rows = list(csv.DictReader(io.StringIO(client.get(reverse("scans:export-csv")).content.decode())))
    assert [(row["most_like"], row["most_like_probability"]) for row in rows] == [("", ""), ("", "")]


def test_an_older_result_without_manipulation_entries_still_renders(client, alice):
    result = {
        "verdict": "real",
        "fake_probability": 0.1,
        "faces": [{"index": 0, "box": [1, 2, 30, 30], "fake_probability": 0.1, "verdict": "real"}],
        "media": {"width": 64, "height": 48},
    }
    scan = make_scan_row(alice, status=Scan.Status.DONE, verdict="real", fake_probability=0.1, result=result)
    client.force_login(alice)

    page = client.get(reverse("scans:detail", args=[scan.id]))

    assert page.status_code == 200 and "most like:" not in page.content.decode()
