"""History: date filters, deleting many scans in one POST, and reusing the result of an identical upload."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from scans.evidence import evidence_folder
from scans.models import Scan
from scans.selectors import scan_list_for_user
from scans.services import scan_create
from scans.tests.uploads import face_photo, make_scan_row, upload

pytestmark = pytest.mark.django_db


# --- Date filter -------------------------------------------------------------------------------------


def test_the_date_filter_keeps_scans_uploaded_between_the_dates_inclusive(alice):
    old = make_scan_row(alice, original_filename="old.jpg", age=timedelta(days=10))
    recent = make_scan_row(alice, original_filename="recent.jpg", age=timedelta(days=2))
    today = make_scan_row(alice, original_filename="today.jpg")
    now = timezone.localdate()

    since = scan_list_for_user(user=alice, filters={"date_from": now - timedelta(days=3)})
    until = scan_list_for_user(user=alice, filters={"date_to": now - timedelta(days=2)})
    window = scan_list_for_user(
        user=alice, filters={"date_from": now - timedelta(days=2), "date_to": now - timedelta(days=2)}
    )

    assert set(since) == {recent, today}
    assert set(until) == {old, recent}
    assert list(window) == [recent]


def test_the_dashboard_and_the_api_apply_the_date_filter(client, alice, api_client_for):
    make_scan_row(alice, original_filename="old.jpg", age=timedelta(days=10))
    make_scan_row(alice, original_filename="today.jpg")
    since = (timezone.localdate() - timedelta(days=1)).isoformat()
    client.force_login(alice)

    page = client.get(reverse("scans:dashboard"), {"date_from": since}).content.decode()
    listed = api_client_for(alice).get(reverse("api:scan-list"), {"date_from": since}).json()

    assert "today.jpg" in page and "old.jpg" not in page
    assert [scan["original_filename"] for scan in listed["results"]] == ["today.jpg"]


def test_an_invalid_date_is_refused_by_the_api(alice, api_client_for):
    response = api_client_for(alice).get(reverse("api:scan-list"), {"date_from": "yesterday"})

    assert response.status_code == 400


# --- Delete many -------------------------------------------------------------------------------------


def test_deleting_many_removes_only_the_ticked_scans_of_the_owner(
    client, alice, bob, django_capture_on_commit_callbacks
):
    first, second, kept = (make_scan_row(alice, original_filename=f"{name}.jpg") for name in ("a", "b", "c"))
    bobs = make_scan_row(bob, original_filename="bobs.jpg")
    client.force_login(alice)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("scans:delete-many"), {"scan_ids": [first.id, second.id, bobs.id]})

    assert response.status_code == 302
    assert set(Scan.objects.values_list("id", flat=True)) == {kept.id, bobs.id}
    assert "2 scans and their results were deleted." in client.get(response["Location"]).content.decode()


def test_deleting_many_deletes_files_and_evidence_folders(client, alice, django_capture_on_commit_callbacks):
    row = make_scan_row(alice, file="uploads/bulk.jpg")
    default_storage.save("uploads/bulk.jpg", upload(b"bytes", "bulk.jpg"))
    evidence_name = default_storage.save(f"{evidence_folder(row.id)}/face-0-crop.jpg", upload(b"jpeg", "c.jpg"))
    client.force_login(alice)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("scans:delete-many"), {"scan_ids": [row.id]})

    assert not default_storage.exists("uploads/bulk.jpg")
    assert not default_storage.exists(evidence_name)


def test_deleting_many_needs_a_post_login_and_valid_ids(client, alice):
    url = reverse("scans:delete-many")
    scan = make_scan_row(alice)

    assert client.post(url, {"scan_ids": [scan.id]}).status_code == 302
    assert Scan.objects.filter(pk=scan.pk).exists()
    client.force_login(alice)
    assert client.get(url).status_code == 405
    client.post(url, {"scan_ids": ["not-a-uuid"]})
    client.post(url, {})
    assert Scan.objects.filter(pk=scan.pk).exists()


# --- Reuse -------------------------------------------------------------------------------------------


def _upload(owner, path: Path) -> Scan:
    return scan_create(owner=owner, uploaded_file=upload(path.read_bytes(), path.name))


def test_the_same_file_with_the_same_models_reuses_the_result_without_a_job(
    alice, data_dir, tiny_models, run_worker, api_client_for, django_capture_on_commit_callbacks
):
    photo = face_photo(data_dir)
    first = _upload(alice, photo)
    run_worker()
    first.refresh_from_db()

    with django_capture_on_commit_callbacks(execute=True):
        again = _upload(alice, photo)

    assert again.reused_from == first
    assert again.status == Scan.Status.DONE and again.job_id == ""
    assert again.verdict == first.verdict and again.fake_probability == first.fake_probability
    data = api_client_for(alice).get(reverse("api:scan-detail", args=[again.id])).json()
    assert data["reused_from"] == str(first.id)
    heatmap_url = data["evidence"]["faces"][0]["heatmap_url"]
    assert str(again.id) in heatmap_url
    assert api_client_for(alice).get(heatmap_url).status_code == 200


def test_reuse_is_announced_on_the_page(client, alice, data_dir, tiny_models, run_worker):
    photo = face_photo(data_dir)
    _upload(alice, photo)
    run_worker()
    client.force_login(alice)

    with photo.open("rb") as handle:
        response = client.post(reverse("scans:dashboard"), {"file": handle}, follow=True)

    page = response.content.decode()
    assert "was already analysed with the same models" in page
    assert "data-reused" in page


def test_another_user_or_another_model_version_gets_a_fresh_analysis(
    alice, bob, data_dir, tiny_models, run_worker, _tiny_model_files
):
    from training.services import model_version_register

    photo = face_photo(data_dir)
    _upload(alice, photo)
    run_worker()

    assert _upload(bob, photo).reused_from is None

    image_spec, _video_spec = _tiny_model_files
    newer = model_version_register(
        kind="image",
        name="tiny-image",
        version="test-2",
        weights_path=Path(image_spec.weights_path),
        settings=image_spec.settings,
        training_notes="a second tiny model",
        activate=True,
    )
    assert newer.is_active
    fresh = _upload(alice, photo)
    assert fresh.reused_from is None and fresh.status == Scan.Status.QUEUED
