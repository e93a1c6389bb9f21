"""Dashboard pages: upload through the form, history, detail, delete, the owner-only file view, access rules."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from scans.models import Scan

pytestmark = pytest.mark.django_db


def _jpeg_bytes(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (180, 140, 120)).save(buffer, format="JPEG")
    return buffer.getvalue()


def make_scan(
    owner,
    *,
    name: str = "face.jpg",
    content: bytes | None = None,
    content_type: str = "image/jpeg",
    kind: str = Scan.Kind.IMAGE,
    status: str = Scan.Status.DONE,
    verdict: str = Scan.Verdict.REAL,
    fake_probability: float | None = 0.12,
    result: dict | None = None,
    error_message: str = "",
    age: timedelta = timedelta(0),
) -> Scan:
    """A scan row with a real stored file, as the services would leave it (views are what is under test here)."""
    content = _jpeg_bytes() if content is None else content
    scan = Scan(
        owner=owner,
        kind=kind,
        original_filename=name,
        size_bytes=len(content),
        sha256="ab" * 32,
        content_type=content_type,
        status=status,
        verdict=verdict if status == Scan.Status.DONE else "",
        fake_probability=fake_probability if status == Scan.Status.DONE else None,
        result=result or {},
        error_message=error_message,
    )
    scan.file.save("upload.bin", ContentFile(content), save=False)
    scan.save()
    if age:
        # created_at is auto_now_add: backdate it afterwards to get a definite order.
        Scan.objects.filter(pk=scan.pk).update(created_at=timezone.now() - age)
        scan.refresh_from_db()
    return scan


def _history(response) -> list[Scan]:
    return list(response.context["page"].object_list)


# --- Upload through the form ---------------------------------------------------------------------------


def test_uploaded_photo_is_analysed_by_the_worker_and_shown_in_history_and_detail(
    client, alice, data_dir, tiny_models, run_worker, redis_conn
):
    photo = sorted((data_dir / "images" / "stylegan-celeba" / "val" / "fake").glob("*.jp*g"))[0]
    client.force_login(alice)
    with photo.open("rb") as handle:
        response = client.post(reverse("scans:dashboard"), {"file": handle})

    scan = Scan.objects.get(owner=alice)
    assert response.status_code == 302
    assert response["Location"] == reverse("scans:detail", args=[scan.id])
    assert scan.original_filename == photo.name
    queued_page = client.get(response["Location"]).content.decode()
    assert "is queued for analysis" in queued_page
    assert f'data-scan-poll-url="{reverse("api:scan-detail", args=[scan.id])}"' in queued_page

    run_worker()

    scan.refresh_from_db()
    assert scan.status == Scan.Status.DONE, scan.error_message
    assert scan.faces, "MTCNN should find the generated face in a StyleGAN portrait"
    percent = f"{round(scan.fake_probability * 100, 1)}%"

    history = client.get(reverse("scans:dashboard"))
    assert _history(history) == [scan]
    history_page = history.content.decode()
    assert photo.name in history_page
    assert f'class="badge badge-{scan.verdict}">{scan.get_verdict_display()}<' in history_page

    detail_page = client.get(reverse("scans:detail", args=[scan.id])).content.decode()
    assert "data-scan-poll-url" not in detail_page
    assert scan.get_verdict_display() in detail_page
    assert percent in detail_page
    assert 'class="face-box' in detail_page
    assert scan.sha256 in detail_page
    assert scan.result["models"]["image"] in detail_page

    served = client.get(reverse("scans:file", args=[scan.id]))
    assert b"".join(served.streaming_content) == photo.read_bytes()


def test_text_file_upload_is_rejected_with_400_and_a_clear_error(client, alice):
    client.force_login(alice)
    upload = SimpleUploadedFile("notes.jpg", b"just some text, not a photo\n", content_type="image/jpeg")
    response = client.post(reverse("scans:dashboard"), {"file": upload})
    assert response.status_code == 400
    page = response.content.decode()
    assert "This is a text document" in page
    assert 'class="field-errors"' in page
    assert not Scan.objects.exists()


def test_upload_without_a_file_is_rejected_with_400(client, alice):
    client.force_login(alice)
    response = client.post(reverse("scans:dashboard"), {})
    assert response.status_code == 400
    assert "Choose a photo or a video to upload." in response.content.decode()


def test_upload_over_the_size_limit_is_rejected_with_413(client, alice, settings):
    settings.UNMASK_MAX_IMAGE_BYTES = 100
    client.force_login(alice)
    upload = SimpleUploadedFile("big.jpg", _jpeg_bytes(), content_type="image/jpeg")
    response = client.post(reverse("scans:dashboard"), {"file": upload})
    assert response.status_code == 413
    assert "images up to" in response.content.decode()
    assert not Scan.objects.exists()


def test_rejected_upload_still_shows_the_history(client, alice):
    scan = make_scan(alice, name="earlier.jpg")
    client.force_login(alice)
    response = client.post(reverse("scans:dashboard"), {})
    assert response.status_code == 400
    assert _history(response) == [scan]


def test_upload_form_hints_accepted_types(client, alice):
    client.force_login(alice)
    page = client.get(reverse("scans:dashboard")).content.decode()
    accept = re.search(r'accept="([^"]+)"', page).group(1)
    assert "image/jpeg" in accept
    assert "video/mp4" in accept
    assert 'enctype="multipart/form-data"' in page


# --- History: pagination, filters, empty state ---------------------------------------------------------


def test_history_is_paginated_newest_first(client, alice):
    scans = [make_scan(alice, name=f"photo-{n:02d}.jpg", age=timedelta(minutes=n)) for n in range(25)]
    client.force_login(alice)

    first = client.get(reverse("scans:dashboard"))
    assert _history(first) == scans[:20]
    assert "Page 1 of 2" in first.content.decode()
    second = client.get(reverse("scans:dashboard"), {"page": 2})
    assert _history(second) == scans[20:]
    beyond = client.get(reverse("scans:dashboard"), {"page": 99})
    assert _history(beyond) == scans[20:]


def test_history_filters_by_status_verdict_kind_and_file_name(client, alice):
    real_photo = make_scan(alice, name="holiday.jpg", verdict=Scan.Verdict.REAL)
    fake_photo = make_scan(alice, name="suspicious.jpg", verdict=Scan.Verdict.FAKE, fake_probability=0.93)
    video = make_scan(
        alice, name="clip.mp4", kind=Scan.Kind.VIDEO, content_type="video/mp4", verdict=Scan.Verdict.UNCERTAIN
    )
    failed = make_scan(alice, name="broken.jpg", status=Scan.Status.FAILED, error_message="cannot decode")
    client.force_login(alice)
    url = reverse("scans:dashboard")

    assert _history(client.get(url, {"verdict": "fake"})) == [fake_photo]
    assert _history(client.get(url, {"kind": "video"})) == [video]
    assert _history(client.get(url, {"status": "failed"})) == [failed]
    assert _history(client.get(url, {"q": "HOLI"})) == [real_photo]
    assert _history(client.get(url, {"kind": "image", "verdict": "real"})) == [real_photo]
    assert set(_history(client.get(url, {"status": "not-a-status"}))) == {real_photo, fake_photo, video, failed}


def test_pagination_links_keep_the_filters(client, alice):
    for n in range(21):
        make_scan(alice, name=f"fake-{n}.jpg", verdict=Scan.Verdict.FAKE, fake_probability=0.9)
    client.force_login(alice)
    page = client.get(reverse("scans:dashboard"), {"verdict": "fake"}).content.decode()
    assert 'href="?verdict=fake&amp;page=2"' in page


def test_history_shows_verdict_in_words_probability_kind_and_status(client, alice):
    make_scan(alice, name="suspicious.jpg", verdict=Scan.Verdict.FAKE, fake_probability=0.934)
    client.force_login(alice)
    page = client.get(reverse("scans:dashboard")).content.decode()
    assert '<span class="badge badge-fake">Fake</span>' in page
    assert "93.4%" in page
    assert "Image" in page
    assert "status-done" in page


def test_empty_history_explains_what_to_do(client, alice):
    client.force_login(alice)
    page = client.get(reverse("scans:dashboard")).content.decode()
    assert "No scans yet." in page
    assert "Upload and analyse" in page


def test_filters_matching_nothing_say_so(client, alice):
    make_scan(alice, name="holiday.jpg")
    client.force_login(alice)
    page = client.get(reverse("scans:dashboard"), {"q": "nothing-like-this"}).content.decode()
    assert "No scan matches these filters." in page
    assert "No scans yet." not in page


def test_history_lists_only_the_users_own_scans(client, alice, bob):
    make_scan(alice, name="alices-secret.jpg")
    own = make_scan(bob, name="bobs-photo.jpg")
    client.force_login(bob)
    response = client.get(reverse("scans:dashboard"))
    assert _history(response) == [own]
    assert "alices-secret.jpg" not in response.content.decode()


def test_running_scans_in_history_poll_for_their_status(client, alice):
    running = make_scan(alice, status=Scan.Status.PROCESSING)
    make_scan(alice, name="finished.jpg")
    client.force_login(alice)
    page = client.get(reverse("scans:dashboard")).content.decode()
    assert page.count("data-scan-poll-url=") == 1
    assert f'data-scan-poll-url="{reverse("api:scan-detail", args=[running.id])}"' in page


# --- Detail page ---------------------------------------------------------------------------------------

IMAGE_RESULT = {
    "verdict": "fake",
    "fake_probability": 0.875,
    "faces": [
        {
            "index": 0,
            "box": [50, 25, 20, 10],
            "confidence": 0.998,
            "landmarks": {"left_eye": [55, 28]},
            "fake_probability": 0.875,
            "verdict": "fake",
        },
        {
            "index": 1,
            "box": [150, 60, 30, 30],
            "confidence": 0.91,
            "landmarks": {},
            "fake_probability": 0.2,
            "verdict": "real",
        },
    ],
    "media": {"width": 200, "height": 100},
    "timings": {"decode_s": 0.01, "detect_s": 0.2, "model_s": 0.05, "total_s": 0.26},
    "decision": {"threshold": 0.5, "uncertain_low": 0.4, "uncertain_high": 0.6},
    "models": {"image": "tiny-image@1", "video": None},
    "notes": ["face smaller than 40 px: low confidence"],
}


def test_detail_shows_verdict_band_faces_boxes_timings_and_models(client, alice):
    scan = make_scan(alice, name="portrait.jpg", verdict="fake", fake_probability=0.875, result=IMAGE_RESULT)
    client.force_login(alice)
    page = client.get(reverse("scans:detail", args=[scan.id])).content.decode()

    assert "Likely a deepfake" in page
    assert "87.5%" in page
    assert "Scores from 40.0% to 60.0% fall in the" in page
    assert "the decision threshold is 50.0%" in page
    assert "Face smaller than 40 px: low confidence" in page
    assert f'<img src="{reverse("scans:file", args=[scan.id])}"' in page
    assert 'style="left: 25.00%; top: 25.00%; width: 10.00%; height: 10.00%;"' in page
    assert 'style="left: 75.00%; top: 60.00%; width: 15.00%; height: 30.00%;"' in page
    assert "50, 25, 20, 10" in page
    assert "99.8%" in page
    assert '<span class="badge badge-real">Real</span>' in page
    assert "Detect" in page and "0.20 s" in page
    assert "tiny-image@1" in page
    assert scan.sha256 in page
    assert "data-scan-poll-url" not in page


def test_detail_lists_the_stage_timings_in_the_order_they_run(client, alice):
    timings = {"evidence_s": 0.04, "total_s": 0.3, "model_s": 0.05, "crop_s": 0.01, "detect_s": 0.2, "decode_s": 0.02}
    scan = make_scan(alice, verdict="fake", fake_probability=0.9, result={**IMAGE_RESULT, "timings": timings})
    client.force_login(alice)
    page = client.get(reverse("scans:detail", args=[scan.id])).content.decode()

    names = ["Decode", "Detect", "Crop", "Model", "Analysis total", "Evidence (heatmaps)"]
    positions = [page.index(f"<dt>{name}</dt>") for name in names]
    assert positions == sorted(positions)


def test_detail_of_a_photo_without_faces_says_so(client, alice):
    result = {**IMAGE_RESULT, "verdict": "no_face", "fake_probability": None, "faces": [], "notes": []}
    scan = make_scan(alice, verdict=Scan.Verdict.NO_FACE, fake_probability=None, result=result)
    client.force_login(alice)
    page = client.get(reverse("scans:detail", args=[scan.id])).content.decode()
    assert "No face found, so there is nothing to judge" in page
    assert "No face was found in this photo" in page
    assert 'class="face-box' not in page


def test_detail_of_a_video_lists_tracks_and_frames(client, alice):
    result = {
        "verdict": "fake",
        "fake_probability": 0.81,
        "faces": [
            {
                "index": 0,
                "box": [100, 80, 60, 60],
                "fake_probability": 0.81,
                "verdict": "fake",
                "n_frames": 2,
                "frame_indices": [0, 12],
                "frame_scores": [0.7, 0.9],
                "sequence_probability": 0.84,
                "aggregate_probability": 0.8,
            }
        ],
        "frames": [
            {"index": 0, "time_s": 0.0, "faces": [{"track": 0, "box": [100, 80, 60, 60], "fake_probability": 0.7}]},
            {"index": 12, "time_s": 0.48, "faces": [{"track": 0, "box": [102, 81, 60, 60], "fake_probability": 0.9}]},
        ],
        "media": {
            "width": 640,
            "height": 480,
            "fps": 25.0,
            "frame_count": 250,
            "duration_s": 10.0,
            "frames_analyzed": 2,
        },
        "timings": {"decode_s": 0.3, "total_s": 1.2},
        "decision": {"threshold": 0.5, "uncertain_low": 0.4, "uncertain_high": 0.6},
        "models": {"image": "tiny-image@1", "video": "tiny-video@1"},
        "notes": [],
        "scoring": {"method": "trimmed_mean_logit", "frame_threshold": 0.75, "sequence_weight": 0.5, "trim": 0.2},
    }
    scan = make_scan(
        alice,
        name="clip.mp4",
        kind="video",
        content_type="video/mp4",
        verdict="fake",
        fake_probability=0.81,
        result=result,
    )
    client.force_login(alice)
    page = client.get(reverse("scans:detail", args=[scan.id])).content.decode()
    assert "People tracked" in page
    assert "A sequence model that reads the frames in order contributed 50% of this score" in page
    assert "Frame aggregate 80.0%, sequence model 84.0%" in page
    assert "1 over the frame threshold" in page
    assert 'title="frame 12: 90.0%"' in page
    assert "Analysed frames (2)" in page
    assert "0.48 s" in page
    assert "person 1: 70.0%" in page and "#0" not in page
    assert "1 person, 1 likely fake" in page
    assert "tiny-video@1" in page
    assert "10.0 s at 25 fps" in page
    assert f'<video class="media-video" src="{reverse("scans:file", args=[scan.id])}"' in page


def test_detail_of_a_failed_scan_shows_its_error(client, alice):
    scan = make_scan(alice, status=Scan.Status.FAILED, error_message="The image is damaged or truncated.")
    client.force_login(alice)
    page = client.get(reverse("scans:detail", args=[scan.id])).content.decode()
    assert "The analysis failed" in page
    assert "The image is damaged or truncated." in page
    assert "data-scan-poll-url" not in page


def test_detail_of_a_running_scan_polls_the_api_and_shows_progress(client, alice):
    scan = make_scan(alice, kind="video", content_type="video/mp4", status=Scan.Status.PROCESSING)
    Scan.objects.filter(pk=scan.pk).update(progress={"stage": "detecting faces", "frames_done": 8, "frames_total": 32})
    client.force_login(alice)
    page = client.get(reverse("scans:detail", args=[scan.id])).content.decode()
    assert f'data-scan-poll-url="{reverse("api:scan-detail", args=[scan.id])}"' in page
    assert 'data-refresh-region="#scan-region"' in page
    assert "Analysing: detecting faces" in page
    assert 'value="25"' in page
    assert "8 of 32 frames" in page
    assert "js/scan.js" in page


def test_detail_escapes_a_hostile_file_name(client, alice):
    scan = make_scan(alice, name="<script>alert(1)</script>.jpg")
    client.force_login(alice)
    page = client.get(reverse("scans:detail", args=[scan.id])).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in page


# --- Delete --------------------------------------------------------------------------------------------


def test_owner_deletes_a_scan_and_its_file(client, alice, django_capture_on_commit_callbacks):
    scan = make_scan(alice)
    stored = Path(scan.file.path)
    assert stored.exists()
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("scans:delete", args=[scan.id]))
    assert response.status_code == 302
    assert response["Location"] == reverse("scans:dashboard")
    assert not Scan.objects.filter(pk=scan.pk).exists()
    assert not stored.exists()


def test_delete_by_get_is_refused(client, alice):
    scan = make_scan(alice)
    client.force_login(alice)
    assert client.get(reverse("scans:delete", args=[scan.id])).status_code == 405
    assert Scan.objects.filter(pk=scan.pk).exists()


# --- The file view -------------------------------------------------------------------------------------


def test_file_is_streamed_to_its_owner_with_safe_headers(client, alice):
    content = _jpeg_bytes()
    scan = make_scan(alice, name='evil"name;\r\n.jpg', content=content)
    client.force_login(alice)
    response = client.get(reverse("scans:file", args=[scan.id]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == content
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"].startswith("private")
    assert response["Content-Disposition"] == 'inline; filename="evilname.jpg"'
    assert "sandbox" in response["Content-Security-Policy"]


def test_file_with_a_non_ascii_name_gets_an_encoded_disposition(client, alice):
    scan = make_scan(alice, name="portrait\u202eélan.jpg")
    client.force_login(alice)
    response = client.get(reverse("scans:file", args=[scan.id]))
    assert response["Content-Disposition"] == "inline; filename*=utf-8''portrait%C3%A9lan.jpg"


def test_file_of_an_unexpected_type_is_only_offered_as_a_download(client, alice):
    scan = make_scan(alice, name="page.html", content=b"<html></html>", content_type="text/html")
    client.force_login(alice)
    response = client.get(reverse("scans:file", args=[scan.id]))
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")


def test_file_missing_from_storage_is_404(client, alice):
    scan = make_scan(alice)
    scan.file.storage.delete(scan.file.name)
    client.force_login(alice)
    assert client.get(reverse("scans:file", args=[scan.id])).status_code == 404


# --- Access: owner, another user, anonymous on every scan page ----------------------------------------

SCAN_ROUTES = [("scans:detail", "get", 200), ("scans:file", "get", 200), ("scans:delete", "post", 302)]


@pytest.mark.parametrize(("route", "method", "owner_status"), SCAN_ROUTES)
def test_owner_reaches_every_scan_page(client, alice, route, method, owner_status):
    scan = make_scan(alice)
    client.force_login(alice)
    response = getattr(client, method)(reverse(route, args=[scan.id]))
    assert response.status_code == owner_status


@pytest.mark.parametrize(("route", "method", "owner_status"), SCAN_ROUTES)
def test_other_user_gets_404_on_every_scan_page(client, alice, bob, route, method, owner_status):
    scan = make_scan(alice, name="alices-secret.jpg")
    client.force_login(bob)
    response = getattr(client, method)(reverse(route, args=[scan.id]))
    assert response.status_code == 404
    assert b"alices-secret" not in response.content
    assert Scan.objects.filter(pk=scan.pk).exists()


@pytest.mark.parametrize(("route", "method", "owner_status"), SCAN_ROUTES)
def test_anonymous_is_sent_to_login_on_every_scan_page(client, alice, route, method, owner_status):
    scan = make_scan(alice)
    url = reverse(route, args=[scan.id])
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('accounts:login')}?next={url}"
    assert Scan.objects.filter(pk=scan.pk).exists()


def test_anonymous_is_sent_to_login_from_the_dashboard_and_cannot_upload(client):
    url = reverse("scans:dashboard")
    assert client.get(url)["Location"] == f"{reverse('accounts:login')}?next={url}"
    upload = SimpleUploadedFile("face.jpg", _jpeg_bytes(), content_type="image/jpeg")
    response = client.post(url, {"file": upload})
    assert response.status_code == 302
    assert not Scan.objects.exists()


@pytest.mark.parametrize("route", ["scans:detail", "scans:file"])
def test_unknown_scan_id_is_404(client, alice, route):
    client.force_login(alice)
    response = client.get(reverse(route, args=["00000000-0000-0000-0000-000000000000"]))
    assert response.status_code == 404


def test_an_out_of_scope_photo_headlines_uncertain_with_the_reason_as_subtitle(client, alice):
    reason = "face 1 is 28 px across, smaller than the 40 px needed for a reliable verdict"
    face = {**IMAGE_RESULT["faces"][0], "fake_probability": 0.947, "verdict": "uncertain", "out_of_scope": reason}
    result = {
        **IMAGE_RESULT,
        "verdict": "uncertain",
        "fake_probability": 0.947,
        "faces": [face],
        "notes": [reason],
        "out_of_scope": [reason],
    }
    scan = make_scan(alice, verdict=Scan.Verdict.UNCERTAIN, fake_probability=0.947, result=result)
    client.force_login(alice)

    page = client.get(reverse("scans:detail", args=[scan.id])).content.decode()

    assert "Uncertain: this input is outside what the model can judge" in page
    assert "Likely a deepfake" not in page
    subtitle = page[page.index("data-out-of-scope>") :]
    assert subtitle.startswith("data-out-of-scope>Face 1 is 28 px across")
    assert page.count("Face 1 is 28 px across") == 2  # the subtitle, and beside the face's own verdict


def test_a_scan_stored_before_scoring_was_recorded_explains_it_from_its_video_version(client, alice, tiny_models):
    image_version, video_version = tiny_models
    video_version.settings = {**video_version.settings, "combine": {"sequence_weight": 0.0}}
    video_version.settings["aggregate"] = {"method": "share_over_threshold", "frame_logit_cut": 0.0}
    video_version.save()
    person = {
        "index": 0,
        "box": [0, 0, 80, 80],
        "fake_probability": 0.7,
        "verdict": "fake",
        "frame_indices": [0, 5, 10],
        "frame_scores": [0.9, 0.6, 0.2],
    }
    result = {"kind": "video", "verdict": "fake", "fake_probability": 0.7, "faces": [person], "media": {"fps": 5.0}}
    scan = make_scan(
        alice,
        kind="video",
        content_type="video/mp4",
        verdict="fake",
        fake_probability=0.7,
        result=result,
    )
    Scan.objects.filter(pk=scan.pk).update(image_model_version=image_version, video_model_version=video_version)
    client.force_login(alice)

    page = client.get(reverse("scans:detail", args=[scan.id])).content.decode()

    assert "This score combines the 3 frame scores: the share of frames over the frame threshold (2 of 3)." in page
