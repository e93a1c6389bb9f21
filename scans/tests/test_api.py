"""The scan, token and health API: upload, list, detail, delete, errors, tokens, health."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token

from scans.models import Scan
from scans.queues import SCAN_QUEUE
from scans.tests.uploads import face_photo, gradient_png, image_bytes, make_scan_row, short_clip, upload

pytestmark = pytest.mark.django_db

LIST_URL = reverse("api:scan-list")


def _detail_url(scan_id: object) -> str:
    return reverse("api:scan-detail", args=[scan_id])


# --- Upload and result ---------------------------------------------------------------------------------


def test_upload_answers_202_with_id_status_and_url_then_the_result_appears(
    alice, data_dir, tiny_models, api_client_for, run_worker
):
    client = api_client_for(alice)
    photo = face_photo(data_dir)

    with photo.open("rb") as handle:
        response = client.post(LIST_URL, {"file": handle}, format="multipart")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued"
    assert body["kind"] == "image"
    assert body["original_filename"] == photo.name
    assert body["url"] == f"http://testserver{_detail_url(body['id'])}"
    assert response["Location"] == body["url"]
    assert body["page_url"] == f"http://testserver{reverse('scans:detail', args=[body['id']])}"

    run_worker()
    detail = client.get(_detail_url(body["id"])).json()

    image_version, _video_version = tiny_models
    assert detail["status"] == "done"
    assert detail["verdict"] in {"real", "fake", "uncertain"}
    assert 0.0 <= detail["fake_probability"] <= 1.0
    assert len(detail["faces"]) == 1
    assert detail["result"]["verdict"] == detail["verdict"]
    assert detail["timings"]["total_s"] > 0
    assert detail["models"] == {
        "image": {"id": image_version.pk, "name": "tiny-image", "version": "test", "label": "tiny-image@test"},
        "video": None,
    }
    assert detail["error"] == ""
    assert detail["finished_at"] is not None
    listed = client.get(LIST_URL).json()
    assert [scan["id"] for scan in listed["results"]] == [body["id"]]
    assert listed["results"][0]["verdict"] == detail["verdict"]


def test_an_uploaded_image_without_a_face_ends_as_no_face(alice, tiny_models, api_client_for, run_worker):
    client = api_client_for(alice)
    scan_id = client.post(LIST_URL, {"file": upload(gradient_png(), "sky.png")}, format="multipart").json()["id"]

    run_worker()

    detail = client.get(_detail_url(scan_id)).json()
    assert (detail["status"], detail["verdict"], detail["fake_probability"]) == ("done", "no_face", None)


def test_an_uploaded_video_is_analysed(alice, data_dir, tiny_models, api_client_for, run_worker, settings):
    settings.UNMASK_VIDEO_FRAMES = 8
    client = api_client_for(alice)
    image_version, video_version = tiny_models
    clip = short_clip(data_dir)

    with clip.open("rb") as handle:
        scan_id = client.post(LIST_URL, {"file": handle}, format="multipart").json()["id"]
    run_worker()

    detail = client.get(_detail_url(scan_id)).json()
    assert detail["kind"] == "video"
    assert detail["status"] == "done", detail["error"]
    assert detail["models"]["video"]["label"] == video_version.label
    assert detail["result"]["media"]["frames_analyzed"] == 8
    # The same story as the page and the PDF: who, the score that decides, how it was made, what drove it.
    evidence = detail["evidence"]
    [person] = evidence["faces"]
    assert evidence["summary"].startswith("1 person, ")
    assert evidence["scoring"] == detail["result"]["scoring"]
    assert person["number"] == 1 and person["fake_probability"] == detail["fake_probability"]
    assert person["score_explanation"].startswith("A sequence model that reads the frames in order contributed 50%")
    assert all(frame["fake_probability"] > person["fake_probability"] for frame in person["key_frames"])


# --- Bad input -----------------------------------------------------------------------------------------


def test_upload_without_a_file_is_400_with_the_same_detail_shape_as_every_error(alice, tiny_models, api_client_for):
    response = api_client_for(alice).post(LIST_URL, {}, format="multipart")

    assert response.status_code == 400
    assert response.json() == {"detail": "Send the file to scan as multipart/form-data in a field named `file`."}


def test_a_text_field_named_file_is_400_with_a_detail(alice, tiny_models, api_client_for):
    response = api_client_for(alice).post(LIST_URL, {"file": "not a file"}, format="multipart")

    assert response.status_code == 400
    assert set(response.json()) == {"detail"}


def test_a_file_sent_as_json_is_refused_saying_how_to_send_it(alice, tiny_models, api_client_for):
    # JSON is accepted for a scan by URL (`source_url`), never for the bytes of a file.
    response = api_client_for(alice).post(LIST_URL, {"file": "aGVsbG8="}, format="json")

    assert response.status_code == 400
    assert response.json() == {"detail": "Send the file to scan as multipart/form-data in a field named `file`."}
    assert not Scan.objects.exists()


@pytest.mark.parametrize(
    ("content", "status_code"),
    [
        (b"", 400),
        (b"hello, this is text", 400),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", 400),
        (b"\x00\x01\x02\x03" * 64, 415),
    ],
    ids=["empty", "text", "svg", "unknown-binary"],
)
def test_rejected_content_answers_a_clear_json_error(alice, tiny_models, api_client_for, content, status_code):
    response = api_client_for(alice).post(LIST_URL, {"file": upload(content, "photo.jpg")}, format="multipart")

    assert response.status_code == status_code
    assert response.json()["detail"]
    assert not Scan.objects.exists()


def test_an_image_over_the_size_limit_is_413(alice, tiny_models, api_client_for, settings):
    settings.UNMASK_MAX_IMAGE_BYTES = 100

    response = api_client_for(alice).post(LIST_URL, {"file": upload(image_bytes("BMP"), "big.bmp")}, format="multipart")

    assert response.status_code == 413
    assert "up to" in response.json()["detail"]


def test_a_request_body_larger_than_any_upload_is_413_before_it_is_read(alice, tiny_models, api_client_for, settings):
    settings.UNMASK_MAX_IMAGE_BYTES = settings.UNMASK_MAX_VIDEO_BYTES = 1024
    content = image_bytes("BMP", size=(256, 256))

    response = api_client_for(alice).post(LIST_URL, {"file": upload(content, "big.bmp")}, format="multipart")

    assert response.status_code == 413
    assert "files up to" in response.json()["detail"]


def test_upload_with_no_active_model_is_503(alice, api_client_for):
    response = api_client_for(alice).post(LIST_URL, {"file": upload(image_bytes(), "a.jpg")}, format="multipart")

    assert response.status_code == 503
    assert "model" in response.json()["detail"]


# --- List ----------------------------------------------------------------------------------------------


def test_the_list_is_paginated(alice, api_client_for):
    for number in range(3):
        make_scan_row(alice, original_filename=f"photo-{number}.jpg")

    first_page = api_client_for(alice).get(LIST_URL, {"page_size": 2}).json()
    second_page = api_client_for(alice).get(LIST_URL, {"page_size": 2, "page": 2}).json()

    assert first_page["count"] == 3
    assert [scan["original_filename"] for scan in first_page["results"]] == ["photo-2.jpg", "photo-1.jpg"]
    assert first_page["next"] is not None
    assert [scan["original_filename"] for scan in second_page["results"]] == ["photo-0.jpg"]


def test_the_list_filters_by_status_verdict_kind_and_name(alice, api_client_for):
    make_scan_row(alice, original_filename="cat.jpg")
    wanted = make_scan_row(
        alice,
        kind=Scan.Kind.VIDEO,
        original_filename="Interview.mp4",
        status=Scan.Status.DONE,
        verdict=Scan.Verdict.FAKE,
        fake_probability=0.8,
    )

    response = api_client_for(alice).get(
        LIST_URL, {"status": "done", "verdict": "fake", "kind": "video", "q": "interview"}
    )

    assert [scan["id"] for scan in response.json()["results"]] == [str(wanted.id)]


def test_the_list_reads_no_result_documents_and_a_fixed_number_of_queries(
    alice, api_client_for, django_assert_max_num_queries
):
    big_result = {"verdict": "real", "frames": [{"index": index, "faces": []} for index in range(5000)]}
    for _ in range(5):
        make_scan_row(alice, status=Scan.Status.DONE, verdict="real", fake_probability=0.1, result=big_result)
    client = api_client_for(alice)

    # Token lookup, count, page: no query per row.
    with django_assert_max_num_queries(4) as captured:
        response = client.get(LIST_URL)

    assert response.status_code == 200
    assert len(response.json()["results"]) == 5
    page_query = next(query["sql"] for query in captured.captured_queries if "LIMIT" in query["sql"])
    assert '"scans_scan"."result"' not in page_query


def test_an_invalid_filter_value_is_400(alice, api_client_for):
    response = api_client_for(alice).get(LIST_URL, {"status": "finished-ish"})

    assert response.status_code == 400
    assert "status" in response.json()


# --- Detail and delete ---------------------------------------------------------------------------------


def test_detail_shows_progress_while_processing_and_the_error_when_failed(alice, api_client_for):
    running = make_scan_row(
        alice, status=Scan.Status.PROCESSING, progress={"stage": "detecting faces", "frames_done": 3}
    )
    failed = make_scan_row(alice, status=Scan.Status.FAILED, error_message="The file is missing.")
    client = api_client_for(alice)

    assert client.get(_detail_url(running.id)).json()["progress"] == {"stage": "detecting faces", "frames_done": 3}
    assert client.get(_detail_url(failed.id)).json()["error"] == "The file is missing."


def test_delete_answers_204_and_removes_the_row_and_the_file(
    alice, tiny_models, api_client_for, redis_conn, django_capture_on_commit_callbacks
):
    client = api_client_for(alice)
    scan_id = client.post(LIST_URL, {"file": upload(image_bytes("PNG"), "a.png")}, format="multipart").json()["id"]
    stored_path = Path(Scan.objects.get(pk=scan_id).file.path)
    assert stored_path.is_file()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete(_detail_url(scan_id))

    assert response.status_code == 204
    assert not Scan.objects.filter(pk=scan_id).exists()
    assert not stored_path.exists()
    assert client.get(_detail_url(scan_id)).status_code == 404


def test_a_malformed_scan_id_is_a_json_404(alice, api_client_for):
    response = api_client_for(alice).get("/api/v1/scans/not-a-uuid/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No such scan."}


# --- Bulk delete ---------------------------------------------------------------------------------------

BULK_DELETE_URL = reverse("api:scan-bulk-delete")


def test_bulk_delete_removes_the_callers_scans_and_files_and_counts_them(
    alice, tiny_models, api_client_for, redis_conn, django_capture_on_commit_callbacks
):
    client = api_client_for(alice)
    uploaded = [
        client.post(LIST_URL, {"file": upload(image_bytes(kind), f"a.{kind.lower()}")}, format="multipart").json()["id"]
        for kind in ("PNG", "JPEG")
    ]
    stored_paths = [Path(Scan.objects.get(pk=scan_id).file.path) for scan_id in uploaded]
    kept = make_scan_row(alice, original_filename="kept.jpg")

    with django_capture_on_commit_callbacks(execute=True):
        # The same id twice counts once.
        response = client.post(BULK_DELETE_URL, {"ids": [*uploaded, uploaded[0]]}, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {"deleted": 2, "not_found": []}
    assert list(Scan.objects.values_list("id", flat=True)) == [kept.id]
    assert not any(path.exists() for path in stored_paths)


def test_bulk_delete_never_deletes_another_users_scan_and_reports_it_as_not_found(alice, bob, api_client_for):
    mine = make_scan_row(alice)
    bobs = make_scan_row(bob)
    missing = "00000000-0000-4000-8000-000000000000"

    response = api_client_for(alice).post(
        BULK_DELETE_URL, {"ids": [str(mine.id), str(bobs.id), missing]}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == {"deleted": 1, "not_found": [str(bobs.id), missing]}
    assert list(Scan.objects.values_list("id", flat=True)) == [bobs.id]
    # Bob's scan is still his and reachable by him.
    assert api_client_for(bob).get(_detail_url(bobs.id)).status_code == 200


@pytest.mark.parametrize(
    ("payload", "field_message"),
    [
        ({"ids": ["not-a-uuid"]}, "valid UUID"),
        ({"ids": []}, "at least one scan id"),
        ({"ids": "00000000-0000-4000-8000-000000000000"}, "list"),
        ({}, "required"),
        ({"ids": ["00000000-0000-4000-8000-000000000000"] * 101}, "no more than 100"),
    ],
)
def test_bulk_delete_with_invalid_ids_is_400_and_deletes_nothing(alice, api_client_for, payload, field_message):
    scan = make_scan_row(alice)

    response = api_client_for(alice).post(BULK_DELETE_URL, payload, format="json")

    assert response.status_code == 400
    assert field_message in str(response.json()["ids"])
    assert Scan.objects.filter(pk=scan.pk).exists()


def test_bulk_delete_needs_authentication_and_a_post(alice, api_client_for):
    scan = make_scan_row(alice)

    assert api_client_for(None).post(BULK_DELETE_URL, {"ids": [str(scan.id)]}, format="json").status_code == 401
    assert api_client_for(alice).get(BULK_DELETE_URL).status_code == 405
    assert Scan.objects.filter(pk=scan.pk).exists()


# --- Tokens --------------------------------------------------------------------------------------------


def test_username_and_password_obtain_the_users_token(alice, client):
    response = client.post(reverse("auth_api:token"), {"username": "alice", "password": "correct-horse-battery-1"})

    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=alice).key}


def test_a_wrong_password_obtains_no_token(alice, client):
    response = client.post(reverse("auth_api:token"), {"username": "alice", "password": "wrong"})

    assert response.status_code == 400
    assert not Token.objects.exists()


def test_regenerating_the_token_retires_the_old_one(alice, api_client_for):
    client = api_client_for(alice)
    old_key = Token.objects.get(user=alice).key

    response = client.post(reverse("auth_api:token-regenerate"))

    new_key = response.json()["token"]
    assert response.status_code == 200
    assert new_key != old_key
    assert Token.objects.get(user=alice).key == new_key
    assert client.get(LIST_URL).status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {new_key}")
    assert client.get(LIST_URL).status_code == 200


def test_regenerating_needs_authentication(api_client_for):
    assert api_client_for(None).post(reverse("auth_api:token-regenerate")).status_code == 401


# --- Health --------------------------------------------------------------------------------------------


def test_health_reports_services_workers_queue_and_models_to_anyone(tiny_models, api_client_for, redis_conn, alice):
    make_scan_row(alice)
    redis_conn.rpush(f"rq:queue:{SCAN_QUEUE}", "a-job-id", "another-job-id")

    response = api_client_for(None).get(reverse("api:health"))

    body = response.json()
    image_version, video_version = tiny_models
    assert response.status_code == 200
    assert body["database"] == {"ok": True}
    assert body["redis"] == {"ok": True}
    assert body["workers"] == 0
    assert body["queue_depth"] == 2
    assert body["models"]["image"]["label"] == image_version.label
    assert body["models"]["video"]["label"] == video_version.label
    # Up, but with no worker listening nothing would be analysed.
    assert body["status"] == "degraded"


def test_health_counts_a_live_worker(tiny_models, api_client_for, redis_conn):
    from scans.queues import scan_queue
    from scans.worker import ScanWorker

    worker = ScanWorker([scan_queue()], connection=redis_conn)
    worker.register_birth()
    try:
        body = api_client_for(None).get(reverse("api:health")).json()
    finally:
        worker.register_death()

    assert body["workers"] == 1
    assert body["status"] == "ok"


def test_health_is_503_when_redis_is_down(api_client_for, settings):
    # A real connection attempt to a port nothing listens on.
    settings.RQ_QUEUES = {SCAN_QUEUE: {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60}}

    response = api_client_for(None).get(reverse("api:health"))

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["redis"]["ok"] is False
    assert response.json()["database"] == {"ok": True}
