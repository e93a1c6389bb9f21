"""Evidence made by the worker (crops, Grad-CAM heatmaps, key frames), served to the owner only, in the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse

from ml.result import EXPLANATION_FAILED_NOTE
from scans.evidence import evidence_folder
from scans.models import Scan
from scans.services import scan_create, scan_delete
from scans.tests.uploads import face_photo, gradient_png, make_scan_row, upload

pytestmark = pytest.mark.django_db

JPEG_MAGIC = b"\xff\xd8\xff"


def _upload_file(owner, path: Path) -> Scan:
    return scan_create(owner=owner, uploaded_file=upload(path.read_bytes(), path.name))


@pytest.fixture
def analysed_photo(alice, data_dir, tiny_models, run_worker) -> Scan:
    scan = _upload_file(alice, face_photo(data_dir))
    run_worker()
    scan.refresh_from_db()
    assert scan.status == Scan.Status.DONE, scan.error_message
    return scan


@pytest.fixture
def analysed_clip(alice, data_dir, tiny_models, run_worker, settings) -> Scan:
    settings.UNMASK_VIDEO_FRAMES = 8
    clip = sorted((data_dir / "videos" / "celebdf" / "fake").glob("*.mp4"))[0]
    scan = _upload_file(alice, clip)
    run_worker()
    scan.refresh_from_db()
    assert scan.status == Scan.Status.DONE, scan.error_message
    return scan


def test_the_worker_stores_a_crop_and_a_heatmap_per_face(analysed_photo):
    face = analysed_photo.result["faces"][0]
    names = analysed_photo.result["evidence"]["files"]

    assert face["crop"] in names and face["heatmap"] in names
    for name in (face["crop"], face["heatmap"]):
        stored = default_storage.open(f"{evidence_folder(analysed_photo.id)}/{name}", "rb").read()
        assert stored.startswith(JPEG_MAGIC)


def test_the_api_returns_boxes_probabilities_and_heatmap_urls_that_serve_jpegs(alice, analysed_photo, api_client_for):
    client = api_client_for(alice)

    data = client.get(reverse("api:scan-detail", args=[analysed_photo.id])).json()

    face = data["evidence"]["faces"][0]
    assert len(face["box"]) == 4
    assert 0.0 <= face["fake_probability"] <= 1.0
    assert face["heatmap_url"].startswith("http://testserver/api/v1/scans/")
    assert data["progress"] == {"stage": "done"}
    served = client.get(face["heatmap_url"])
    assert served.status_code == 200
    assert served["Content-Type"] == "image/jpeg"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert b"".join(served.streaming_content).startswith(JPEG_MAGIC)


def test_the_detail_page_shows_each_faces_crop_and_heatmap(client, alice, analysed_photo):
    client.force_login(alice)
    face = analysed_photo.result["faces"][0]

    page = client.get(reverse("scans:detail", args=[analysed_photo.id])).content.decode()

    assert reverse("scans:evidence", args=[analysed_photo.id, face["heatmap"]]) in page
    assert reverse("scans:evidence", args=[analysed_photo.id, face["crop"]]) in page


def test_evidence_is_served_to_its_owner_only(client, alice, bob, analysed_photo, api_client_for):
    name = analysed_photo.result["faces"][0]["heatmap"]
    page_url = reverse("scans:evidence", args=[analysed_photo.id, name])
    api_url = reverse("api:scan-evidence", args=[analysed_photo.id, name])

    client.force_login(alice)
    assert client.get(page_url).status_code == 200
    client.force_login(bob)
    assert client.get(page_url).status_code == 404
    client.logout()
    anonymous = client.get(page_url)
    assert anonymous.status_code == 302 and reverse("accounts:login") in anonymous["Location"]
    assert api_client_for(bob).get(api_url).status_code == 404
    assert api_client_for(None).get(api_url).status_code == 401


@pytest.mark.parametrize(
    "name", ["..%2F..%2Fuploads%2Fx.jpg", "..", "face-9-crop.jpg", "face-0-crop.jpg.png", "%2Fetc%2Fpasswd"]
)
def test_unrecorded_or_traversing_names_are_404(client, alice, analysed_photo, name):
    client.force_login(alice)

    response = client.get(f"/scans/{analysed_photo.id}/evidence/{name}")

    assert response.status_code == 404


def test_deleting_a_scan_deletes_its_evidence_folder(alice, analysed_photo, django_capture_on_commit_callbacks):
    folder = Path(default_storage.path(evidence_folder(analysed_photo.id)))
    assert any(folder.iterdir())

    with django_capture_on_commit_callbacks(execute=True):
        scan_delete(scan=analysed_photo)

    assert not folder.exists()


def test_a_photo_without_a_face_has_no_evidence(alice, tiny_models, run_worker):
    scan = scan_create(owner=alice, uploaded_file=upload(gradient_png(), "sky.png"))
    run_worker()
    scan.refresh_from_db()

    assert scan.verdict == Scan.Verdict.NO_FACE
    assert scan.result["evidence"]["files"] == []


def test_a_video_gets_per_person_evidence_key_frames_and_a_timeline(alice, analysed_clip, api_client_for, client):
    person = analysed_clip.result["faces"][0]
    assert person["crop"] and person["heatmap"]
    assert person["crop_frame"] in person["frame_indices"]
    # The key frames are those that pushed the score up (the tiny model averages: above the person's score).
    above = sorted((score for score in person["frame_scores"] if score > person["fake_probability"]), reverse=True)
    if person["verdict"] in {"fake", "uncertain"}:
        assert [frame["fake_probability"] for frame in person["key_frames"]] == above[:6]
    else:
        assert person["key_frames"] == []

    data = api_client_for(alice).get(reverse("api:scan-detail", args=[analysed_clip.id])).json()

    timeline = data["evidence"]["timeline"][0]
    assert len(timeline["points"]) == person["n_frames"]
    assert all(point["time_s"] is not None for point in timeline["points"])
    assert data["evidence"]["faces"][0]["heatmap_url"]
    client.force_login(alice)
    page = client.get(reverse("scans:detail", args=[analysed_clip.id])).content.decode()
    assert "<svg" in page and 'class="timeline-threshold"' in page


def test_the_history_shows_a_progress_bar_for_a_running_scan(client, alice):
    progress = {"stage": "detecting faces", "frames_done": 4, "frames_total": 8, "faces_found": 3}
    make_scan_row(alice, kind=Scan.Kind.VIDEO, status=Scan.Status.PROCESSING, progress=progress)
    client.force_login(alice)

    page = client.get(reverse("scans:dashboard")).content.decode()

    assert 'data-scan-progress max="100" value="50"' in page
    assert "4 of 8 frames · 3 faces found" in page


def test_an_ffpp_video_has_boxes_timelines_key_frames_and_heatmap_urls_in_the_api(
    alice, data_dir, tiny_models, run_worker, settings, api_client_for
):
    settings.UNMASK_VIDEO_FRAMES = 6
    video = data_dir / "videos" / "ffpp" / "fake" / "ffpp_deepfakes_519_515.mp4"
    scan = _upload_file(alice, video)
    run_worker()
    client = api_client_for(alice)

    data = client.get(reverse("api:scan-detail", args=[scan.id])).json()

    assert data["status"] == "done", data["error"]
    person = data["evidence"]["faces"][0]
    assert len(person["box"]) == 4 and 0.0 <= person["fake_probability"] <= 1.0
    assert client.get(person["heatmap_url"]).status_code == 200
    timeline = data["evidence"]["timeline"][0]
    times = [point["time_s"] for point in timeline["points"]]
    assert times == sorted(times) and times[-1] <= data["result"]["media"]["duration_s"]
    for key_frame in person["key_frames"]:
        assert client.get(key_frame["url"]).status_code == 200
    assert data["evidence"]["decision"]["threshold"] == pytest.approx(0.5)


def test_a_failure_to_draw_evidence_keeps_the_verdict_and_says_so(
    alice, data_dir, tiny_models, run_worker, monkeypatch
):
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("gradient tape exploded")

    monkeypatch.setattr("ml.explain.gradcam_heatmaps", broken)
    scan = _upload_file(alice, face_photo(data_dir))

    run_worker()

    scan.refresh_from_db()
    assert scan.status == Scan.Status.DONE
    assert scan.verdict in {"real", "fake", "uncertain"}
    assert EXPLANATION_FAILED_NOTE in scan.result["notes"]
    assert "evidence" not in scan.result
    assert not Path(default_storage.path(evidence_folder(scan.id))).exists()


def test_the_worker_records_metadata_hints_apart_from_the_verdict(client, alice, analysed_photo):
    hints = analysed_photo.result["metadata"]
    client.force_login(alice)

    page = client.get(reverse("scans:detail", args=[analysed_photo.id])).content.decode()

    assert hints["readable"] is True
    assert hints["c2pa"]["status"] == "absent"
    assert "Metadata hints" in page and "Not part of the verdict" in page
