"""Batches: many files in one request (API) or one drop (dashboard), each its own scan; status page and CSV."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from scans.models import Batch, Scan
from scans.tests.uploads import gradient_png, image_bytes

pytestmark = pytest.mark.django_db

BATCHES_URL = reverse("api:batch-list")


def _files() -> list[SimpleUploadedFile]:
    return [
        SimpleUploadedFile("gradient.png", gradient_png()),
        SimpleUploadedFile("=cmd.jpg", image_bytes("JPEG")),
        SimpleUploadedFile("notes.jpg", b"just some text, not a photo\n"),
    ]


def test_the_api_makes_one_scan_per_file_and_records_the_refused_ones(
    alice, bob, api_client_for, tiny_models, run_worker, redis_conn
):
    client = api_client_for(alice)

    response = client.post(BATCHES_URL, {"files": _files()}, format="multipart")

    assert response.status_code == 202, response.data
    batch = Batch.objects.get()
    assert response["Location"].endswith(reverse("api:batch-detail", args=[batch.pk]))
    assert [scan["original_filename"] for scan in response.data["scans"]] == ["gradient.png", "=cmd.jpg"]
    assert response.data["status"] == "processing"
    assert [item["filename"] for item in response.data["rejected"]] == ["notes.jpg"]
    assert response.data["rejected"][0]["status_code"] in {400, 415}
    assert set(Scan.objects.values_list("batch", flat=True)) == {batch.pk}

    run_worker()

    detail = client.get(reverse("api:batch-detail", args=[batch.pk])).data
    assert detail["status"] == "done"
    assert detail["counts"] == {"scans": 2, "rejected": 1, "by_status": {"done": 2}, "by_verdict": {"no_face": 2}}
    exported = client.get(reverse("api:batch-csv", args=[batch.pk]))
    assert exported["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert len(rows) == 3
    assert {row[2] for row in rows[1:]} == {"gradient.png", "'=cmd.jpg"}
    assert api_client_for(bob).get(reverse("api:batch-detail", args=[batch.pk])).status_code == 404
    assert api_client_for(bob).get(reverse("api:batch-csv", args=[batch.pk])).status_code == 404
    assert api_client_for(bob).get(BATCHES_URL).data["count"] == 0
    assert api_client_for(None).get(BATCHES_URL).status_code == 401


def test_an_empty_or_oversized_batch_is_refused_whole(alice, api_client_for, tiny_models, redis_conn, settings):
    settings.UNMASK_BATCH_MAX_FILES = 2
    client = api_client_for(alice)

    empty = client.post(BATCHES_URL, {}, format="multipart")
    too_many = client.post(BATCHES_URL, {"files": _files()}, format="multipart")

    assert empty.status_code == 400
    assert too_many.status_code == 400 and "at most 2 files" in too_many.data["detail"]
    assert not Batch.objects.exists() and not Scan.objects.exists()


def test_the_rate_limit_stops_a_batch_part_way(alice, api_client_for, tiny_models, redis_conn, settings):
    settings.UNMASK_UPLOAD_RATE_LIMIT = 1

    response = api_client_for(alice).post(BATCHES_URL, {"files": _files()[:2]}, format="multipart")

    assert response.status_code == 202
    assert len(response.data["scans"]) == 1
    assert [item["status_code"] for item in response.data["rejected"]] == [429]


def test_a_batch_without_an_active_model_is_unavailable(alice, api_client_for, redis_conn):
    response = api_client_for(alice).post(BATCHES_URL, {"files": _files()[:1]}, format="multipart")

    assert response.status_code == 503
    assert not Batch.objects.exists()


def test_the_dashboard_takes_a_drop_of_files_and_shows_the_batch(alice, bob, client, tiny_models, redis_conn):
    client.force_login(alice)

    response = client.post(reverse("scans:batch-new"), {"files": _files()})

    batch = Batch.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("scans:batch", args=[batch.pk])
    page = client.get(response["Location"]).content.decode()
    assert "gradient.png" in page and "notes.jpg" in page
    assert reverse("scans:batch-csv", args=[batch.pk]) in page
    assert client.get(reverse("scans:batch-csv", args=[batch.pk])).status_code == 200
    assert str(batch.pk) in client.get(reverse("scans:batch-new")).content.decode()
    client.force_login(bob)
    assert client.get(reverse("scans:batch", args=[batch.pk])).status_code == 404
    assert client.get(reverse("scans:batch-csv", args=[batch.pk])).status_code == 404


def test_the_dashboard_explains_an_empty_drop(alice, client, tiny_models, redis_conn):
    client.force_login(alice)

    response = client.post(reverse("scans:batch-new"), {})

    assert response.status_code == 400
    assert "Choose at least one file." in response.content.decode()
