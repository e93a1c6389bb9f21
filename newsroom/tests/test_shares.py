"""Share links: a read-only result page and PDF for someone without an account; unguessable, optionally expiring,
revocable, with the original file only when asked for, every view counted and in the audit log. The token is
stored only as its digest: it is shown once, when the link is made, and is nowhere in the database."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from newsroom.models import AuditEvent, ShareLink, share_token_digest
from newsroom.tests.conftest import Desk
from scans.evidence import evidence_folder
from scans.models import Scan
from scans.tests.uploads import image_bytes

pytestmark = pytest.mark.django_db

EVIDENCE = "face-0-crop.jpg"


def _shares_url(scan: Scan) -> str:
    return reverse("newsroom_api:scan-shares", args=[scan.pk])


@pytest.fixture
def stored(desk: Desk) -> Desk:
    """carol's scan with its upload and one evidence image stored."""
    scan = desk.scan
    scan.result = {**scan.result, "evidence": {"files": [EVIDENCE]}}
    scan.save(update_fields=["result"])
    scan.file.save("upload.jpg", ContentFile(image_bytes("JPEG")), save=True)
    default_storage.save(f"{evidence_folder(scan.id)}/{EVIDENCE}", ContentFile(image_bytes("JPEG")))
    return desk


def _make(desk: Desk, api_client_for, **payload) -> dict:
    response = api_client_for(desk.user("analyst")).post(_shares_url(desk.scan), payload, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_link_is_unguessable_read_only_and_says_it_is_a_shared_view(stored: Desk, api_client_for):
    link = _make(stored, api_client_for, expires_in_days=7)

    page = APIClient().get(link["url"])

    assert len(link["token"]) >= 43 and link["state"] == "active" and link["include_original"] is False
    assert link["url"].endswith(f"/shared/{link['token']}/") and link["token_prefix"] == link["token"][:8]
    body = page.content.decode()
    assert page.status_code == 200
    assert "Shared view." in body and "shared by carol" in body
    assert "Likely a deepfake" in body
    assert reverse("scans:file", args=[stored.scan.pk]) not in body and "Download the original" not in body
    assert "data-review-form" not in body and "data-share-form" not in body and "Delete scan" not in body
    assert f"/shared/{link['token']}/report.pdf" in body
    assert page["X-Robots-Tag"] == "noindex, nofollow" and page["Referrer-Policy"] == "no-referrer"
    assert "no-store" in page["Cache-Control"]


def test_every_view_is_counted_and_logged(stored: Desk, api_client_for):
    link = _make(stored, api_client_for)
    visitor = APIClient()

    visitor.get(link["url"])
    visitor.get(link["url"])
    pdf = visitor.get(link["pdf_url"])

    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    shown = api_client_for(stored.user("analyst")).get(
        reverse("newsroom_api:scan-share-detail", args=[stored.scan.pk, link["id"]])
    )
    assert shown.json()["view_count"] == 3 and shown.json()["last_viewed_at"]
    views = AuditEvent.objects.filter(action=AuditEvent.Action.VIEWED_SHARED, team=stored.team)
    assert sorted(event.detail["what"] for event in views) == ["page", "page", "pdf"]
    assert {event.actor_name for event in views} == {""}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SHARED, actor_name="carol").count() == 1


def test_the_original_is_only_served_through_a_link_made_with_it(stored: Desk, api_client_for):
    without = _make(stored, api_client_for)
    with_original = _make(stored, api_client_for, include_original=True)
    visitor = APIClient()

    refused = visitor.get(f"/shared/{without['token']}/file/")
    served = visitor.get(f"/shared/{with_original['token']}/file/")
    page = visitor.get(with_original["url"]).content.decode()

    assert refused.status_code == 404
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == image_bytes("JPEG")
    assert served["X-Content-Type-Options"] == "nosniff"
    assert f"/shared/{with_original['token']}/file/" in page and "Download the original" in page


def test_evidence_images_of_the_page_come_through_the_link(stored: Desk, api_client_for):
    link = _make(stored, api_client_for)
    visitor = APIClient()

    image = visitor.get(f"/shared/{link['token']}/evidence/{EVIDENCE}")
    unknown = visitor.get(f"/shared/{link['token']}/evidence/face-9-crop.jpg")

    assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"
    assert unknown.status_code == 404


def test_an_expired_a_revoked_and_an_unknown_link_open_nothing(stored: Desk, api_client_for):
    expired = _make(stored, api_client_for, expires_in_days=1)
    ShareLink.objects.filter(pk=expired["id"]).update(expires_at=timezone.now() - timedelta(minutes=1))
    revoked = _make(stored, api_client_for)
    revoke = api_client_for(stored.user("owner")).delete(
        reverse("newsroom_api:scan-share-detail", args=[stored.scan.pk, revoked["id"]])
    )
    visitor = APIClient()

    assert revoke.status_code == 204
    for url, status, message in (
        (expired["url"], 410, "This link has expired. Ask the person who shared it for a new one."),
        (expired["pdf_url"], 410, "This link has expired."),
        (revoked["url"], 410, "This link was turned off by the person who shared it."),
        (f"/shared/{'x' * 43}/", 404, "There is no shared result at this address"),
        (f"/shared/{'x' * 43}/report.pdf", 404, "There is no shared result at this address"),
    ):
        response = visitor.get(url)
        assert response.status_code == status, url
        assert message in response.content.decode()
        assert "Likely a deepfake" not in response.content.decode()
    assert ShareLink.objects.get(pk=revoked["id"]).view_count == 0
    listed = api_client_for(stored.user("analyst")).get(_shares_url(stored.scan)).json()
    assert {entry["id"]: entry["state"] for entry in listed}[revoked["id"]] == "revoked"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.UNSHARED, actor_name="alice").count() == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [({"expires_in_days": 0}, "greater than or equal to 1"), ({"expires_in_days": 400}, "less than or equal to 365")],
)
def test_an_expiry_out_of_range_is_refused(payload, message, desk: Desk, api_client_for):
    response = api_client_for(desk.user("analyst")).post(_shares_url(desk.scan), payload, format="json")

    assert response.status_code == 400
    assert message in str(response.json())


def test_a_scan_still_running_cannot_be_shared(desk: Desk, api_client_for):
    Scan.objects.filter(pk=desk.scan.pk).update(status=Scan.Status.QUEUED)

    response = api_client_for(desk.user("analyst")).post(_shares_url(desk.scan), {}, format="json")

    assert response.status_code == 400
    assert response.json() == {"detail": "Only a finished scan can be shared: wait for its verdict."}


def test_a_viewer_may_not_see_or_revoke_links_and_a_non_member_gets_404(desk: Desk, api_client_for):
    detail = reverse("newsroom_api:scan-share-detail", args=[desk.scan.pk, desk.share.pk])

    viewer = api_client_for(desk.user("viewer")).delete(detail)
    outsider = api_client_for(desk.user("non_member")).delete(detail)

    assert viewer.status_code == 403
    assert viewer.json()["detail"] == "Viewers cannot share scans; an owner of the team can make you an analyst."
    assert outsider.status_code == 404
    desk.share.refresh_from_db()
    assert desk.share.revoked_at is None


def test_another_scans_link_id_is_404(desk: Desk, api_client_for):
    response = api_client_for(desk.user("analyst")).get(
        reverse("newsroom_api:scan-share-detail", args=[desk.scan.pk, desk.share.pk + 1000])
    )

    assert response.status_code == 404
    assert response.json() == {"detail": "No such share link."}


def test_the_result_page_makes_lists_and_revokes_links(desk: Desk):
    client = APIClient()
    client.force_login(desk.user("analyst"))
    url = reverse("newsroom:scan-shares", args=[desk.scan.pk])

    created = client.post(url, {"action": "create", "expires_in_days": "30", "include_original": "1"})
    made = ShareLink.objects.exclude(pk=desk.share.pk).get()
    shown_once = created.content.decode()
    shared_url = re.search(r'value="(http://testserver/shared/[^"]+/)" id="share-new-url"', shown_once).group(1)
    token = shared_url.rstrip("/").rsplit("/", 1)[1]
    page = client.get(reverse("scans:detail", args=[desk.scan.pk])).content.decode()
    opened = APIClient().get(shared_url)
    client.post(url, {"action": "revoke", "link": str(made.pk)})

    assert created.status_code == 201 and "no-store" in created["Cache-Control"]
    assert "Copy this link now: it cannot be shown again." in shown_once
    assert made.token_digest == share_token_digest(token) and made.token_prefix == token[:8]
    assert opened.status_code == 200 and "Shared view." in opened.content.decode()
    assert made.include_original and made.expires_at > timezone.now() + timedelta(days=29)
    # Listed later by prefix, state and views only: the URL was shown once and is gone.
    assert token not in page and "/shared/" not in page and "cannot be shown again" not in page
    assert f"{made.token_prefix}…" in page and "with the original" in page and "0 views" in page
    made.refresh_from_db()
    assert made.revoked_at is not None


def test_the_share_form_is_not_on_a_viewers_page(desk: Desk):
    client = APIClient()
    client.force_login(desk.user("viewer"))

    page = client.get(reverse("scans:detail", args=[desk.scan.pk])).content.decode()
    refused = client.post(reverse("newsroom:scan-shares", args=[desk.scan.pk]), {"action": "create"})

    assert "data-share-form" not in page and desk.share.plain_token not in page
    assert desk.share.token_prefix not in page
    assert refused.status_code == 302
    assert ShareLink.objects.count() == 1


def _every_stored_value() -> str:
    """Every row of every table, as text: what someone with a copy of the database could read."""
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            # The names come from the database itself, quoted.
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608  # nosec B608
            rows.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(rows)


def test_the_database_never_holds_a_token_only_its_digest(stored: Desk, api_client_for):
    link = _make(stored, api_client_for, include_original=True)
    client = APIClient()
    client.force_login(stored.user("analyst"))
    page = client.post(reverse("newsroom:scan-shares", args=[stored.scan.pk]), {"action": "create"})
    from_page = re.search(r"/shared/([^/\"]+)/", page.content.decode()).group(1)
    visitor = APIClient()
    # Opened through every door, so that any view that wrote the token down would be caught.
    for path in ("", "report.pdf", "file/", f"evidence/{EVIDENCE}"):
        assert visitor.get(f"{link['url']}{path}").status_code == 200, path
    assert visitor.get(f"/shared/{from_page}/").status_code == 200

    stored_values = _every_stored_value()

    for token in (link["token"], from_page, stored.share.plain_token):
        assert token not in stored_values
        assert share_token_digest(token) in stored_values
    assert ShareLink.objects.get(pk=link["id"]).token_digest == share_token_digest(link["token"])
    assert {field.name for field in ShareLink._meta.get_fields()}.isdisjoint({"token", "url"})


def test_listing_and_reading_links_never_gives_their_token_or_url(stored: Desk, api_client_for):
    made = _make(stored, api_client_for)
    client = api_client_for(stored.user("analyst"))

    listed = client.get(_shares_url(stored.scan))
    one = client.get(reverse("newsroom_api:scan-share-detail", args=[stored.scan.pk, made["id"]]))

    assert listed.status_code == 200 and one.status_code == 200
    for body, entry in ((listed.content.decode(), listed.json()[0]), (one.content.decode(), one.json())):
        assert made["token"] not in body and "/shared/" not in body
        assert not {"token", "url", "pdf_url"} & set(entry)
        assert entry["token_prefix"] == made["token"][:8] and entry["state"] == "active"
        assert {"view_count", "expires_at", "include_original"} <= set(entry)
    assert {entry["id"] for entry in listed.json()} == {made["id"], stored.share.pk}


@pytest.mark.parametrize("token", ["x" * 65, "%20", "A" * 43])
def test_a_token_that_is_no_links_opens_nothing(token: str, desk: Desk):
    response = APIClient().get(f"/shared/{token}/")

    assert response.status_code == 404
    assert "There is no shared result at this address" in response.content.decode()


def test_a_links_digest_or_prefix_does_not_open_it(desk: Desk):
    visitor = APIClient()

    for key in (desk.share.token_digest, desk.share.token_prefix):
        assert visitor.get(f"/shared/{key}/").status_code == 404
    assert visitor.get(f"/shared/{desk.share.plain_token}/").status_code == 200
