"""Owner (alice), another user (bob) and anonymous on every scan API route.

Bob and anonymous never see, change or delete alice's scan: bob gets the same 404 as for a scan that does
not exist, anonymous gets 401.
"""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from scans.models import Scan
from scans.tests.uploads import image_bytes, make_scan_row, upload

pytestmark = pytest.mark.django_db

LIST_URL = reverse("api:scan-list")
NOT_FOUND = {"detail": "No such scan."}


@pytest.fixture
def alices_scan(alice) -> Scan:
    return make_scan_row(
        alice, original_filename="alice-secret.jpg", status=Scan.Status.DONE, verdict="fake", fake_probability=0.9
    )


@pytest.fixture
def detail_url(alices_scan) -> str:
    return reverse("api:scan-detail", args=[alices_scan.id])


# --- GET /api/v1/scans/ --------------------------------------------------------------------------------


def test_owner_lists_their_scan(alice, alices_scan, api_client_for):
    results = api_client_for(alice).get(LIST_URL).json()["results"]

    assert [scan["id"] for scan in results] == [str(alices_scan.id)]


def test_other_user_lists_none_of_the_owners_scans(bob, alices_scan, api_client_for):
    for query in ({}, {"q": "alice"}, {"status": "done"}):
        response = api_client_for(bob).get(LIST_URL, query)
        assert response.status_code == 200
        assert response.json()["count"] == 0


def test_anonymous_cannot_list(alices_scan, api_client_for):
    response = api_client_for(None).get(LIST_URL)

    assert response.status_code == 401
    assert "alice" not in response.content.decode()


# --- POST /api/v1/scans/ -------------------------------------------------------------------------------


def test_owner_uploads_a_scan_that_is_theirs(alice, tiny_models, redis_conn, api_client_for):
    response = api_client_for(alice).post(LIST_URL, {"file": upload(image_bytes(), "a.jpg")}, format="multipart")

    assert response.status_code == 202
    assert Scan.objects.get(pk=response.json()["id"]).owner == alice


def test_other_users_upload_is_theirs_not_the_owners(alice, bob, tiny_models, redis_conn, api_client_for):
    response = api_client_for(bob).post(LIST_URL, {"file": upload(image_bytes(), "b.jpg")}, format="multipart")

    assert Scan.objects.get(pk=response.json()["id"]).owner == bob
    assert not Scan.objects.filter(owner=alice).exists()


def test_anonymous_cannot_upload(tiny_models, api_client_for):
    response = api_client_for(None).post(LIST_URL, {"file": upload(image_bytes(), "a.jpg")}, format="multipart")

    assert response.status_code == 401
    assert not Scan.objects.exists()


# --- GET /api/v1/scans/{id}/ ---------------------------------------------------------------------------


def test_owner_gets_their_scan(alice, alices_scan, detail_url, api_client_for):
    response = api_client_for(alice).get(detail_url)

    assert response.status_code == 200
    assert response.json()["original_filename"] == "alice-secret.jpg"


def test_other_user_gets_the_same_404_as_for_a_scan_that_does_not_exist(bob, alices_scan, detail_url, api_client_for):
    client = api_client_for(bob)

    response = client.get(detail_url)
    missing = client.get(reverse("api:scan-detail", args=[uuid.uuid4()]))

    assert response.status_code == missing.status_code == 404
    assert response.json() == missing.json() == NOT_FOUND


def test_other_user_signed_in_with_a_session_also_gets_404(bob, alices_scan, detail_url):
    client = APIClient()
    client.force_login(bob)

    assert client.get(detail_url).status_code == 404


def test_anonymous_cannot_get_a_scan(alices_scan, detail_url, api_client_for):
    response = api_client_for(None).get(detail_url)

    assert response.status_code == 401
    assert "alice-secret" not in response.content.decode()


def test_an_invalid_token_is_401(alices_scan, detail_url):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")

    assert client.get(detail_url).status_code == 401


# --- DELETE /api/v1/scans/{id}/ ------------------------------------------------------------------------


def test_owner_deletes_their_scan(alice, alices_scan, detail_url, api_client_for):
    assert api_client_for(alice).delete(detail_url).status_code == 204
    assert not Scan.objects.filter(pk=alices_scan.pk).exists()


def test_other_user_cannot_delete_the_owners_scan(bob, alices_scan, detail_url, api_client_for):
    response = api_client_for(bob).delete(detail_url)

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert Scan.objects.filter(pk=alices_scan.pk).exists()


def test_anonymous_cannot_delete_a_scan(alices_scan, detail_url, api_client_for):
    assert api_client_for(None).delete(detail_url).status_code == 401
    assert Scan.objects.filter(pk=alices_scan.pk).exists()


# --- Methods that do not exist -------------------------------------------------------------------------


def test_nobody_can_rewrite_a_scan(alice, bob, alices_scan, detail_url, api_client_for):
    owner_put = api_client_for(alice).put(detail_url, {"verdict": "real"}, format="json")
    other_put = api_client_for(bob).put(detail_url, {"verdict": "real"}, format="json")
    # PATCH files a scan into a case, and changes nothing else.
    owner_patch = api_client_for(alice).patch(detail_url, {"verdict": "real"}, format="json")
    other_patch = api_client_for(bob).patch(detail_url, {"verdict": "real"}, format="json")

    assert owner_put.status_code == other_put.status_code == 405
    assert owner_patch.status_code == 400
    assert owner_patch.json() == {"case": ["This field is required."]}
    assert other_patch.status_code == 404
    alices_scan.refresh_from_db()
    assert alices_scan.verdict == "fake"
