"""Reviewer labels: who may record one, its history, and where it shows (page above the verdict, API, exports,
webhook payload)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from newsroom.models import ScanReview
from newsroom.tests.conftest import Desk
from scans.exports import CSV_COLUMNS, scans_export_csv
from scans.models import Scan
from scans.tests.test_exports import _pdf_text, validate_export
from scans.tests.uploads import make_scan_row
from scans.wording import review_sentence
from webhooks.delivery import webhook_payload

pytestmark = pytest.mark.django_db


def _reviews_url(scan: Scan) -> str:
    return reverse("newsroom_api:scan-reviews", args=[scan.pk])


def _label(client, scan: Scan, label: str, note: str = ""):
    return client.post(_reviews_url(scan), {"label": label, "note": note}, format="json")


def test_the_sentence_names_the_label_the_reviewer_and_the_utc_time():
    moment = datetime(2026, 12, 1, 10, 40, 12, tzinfo=UTC)

    assert (
        review_sentence(label="confirmed_fake", reviewer_name="anna", reviewed_at=moment)
        == "Reviewed: confirmed fake by anna, 1 Dec 2026 10:40 UTC"
    )


def test_an_analyst_labels_a_team_scan_and_the_history_keeps_every_decision(desk: Desk, api_client_for):
    analyst = api_client_for(desk.user("analyst"))
    owner = api_client_for(desk.user("owner"))

    first = _label(analyst, desk.scan, "confirmed_fake", "Reverse image search: first posted as satire")
    second = _label(owner, desk.scan, "disputed", "The satire account deleted it; asking the agency")

    assert first.status_code == 201, first.content
    assert first.json()["label"] == "confirmed_fake" and first.json()["previous_label"] is None
    assert first.json()["text"].startswith("Reviewed: confirmed fake by carol, ")
    assert second.json()["previous_label"] == "confirmed_fake"
    history = api_client_for(desk.user("viewer")).get(_reviews_url(desk.scan)).json()
    assert [(entry["label"], entry["reviewer"], entry["previous_label"]) for entry in history] == [
        ("disputed", "alice", "confirmed_fake"),
        ("confirmed_fake", "carol", None),
    ]
    detail = api_client_for(desk.user("viewer")).get(reverse("api:scan-detail", args=[desk.scan.pk])).json()
    assert detail["review"]["label"] == "disputed"
    assert detail["review"]["note"] == "The satire account deleted it; asking the agency"
    listed = analyst.get(reverse("api:scan-list"), {"case": desk.case.pk}).json()["results"]
    assert [scan["review_label"] for scan in listed] == ["disputed"]


def test_the_uploader_labels_a_personal_scan(alice, api_client_for):
    scan = make_scan_row(alice, status=Scan.Status.DONE, verdict=Scan.Verdict.REAL, fake_probability=0.1)

    response = _label(api_client_for(alice), scan, "confirmed_real")

    assert response.status_code == 201
    assert ScanReview.objects.get(scan=scan).reviewer_name == "alice"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"label": "fake"}, "is not a valid choice"),
        ({}, "This field is required."),
        ({"label": "disputed", "note": "x" * 2001}, "no more than 2000 characters"),
    ],
)
def test_a_bad_label_is_refused_with_the_reason(payload, message, desk: Desk, api_client_for):
    response = api_client_for(desk.user("analyst")).post(_reviews_url(desk.scan), payload, format="json")

    assert response.status_code == 400
    assert message in str(response.json())
    assert not ScanReview.objects.exists()


def test_a_scan_still_running_cannot_be_reviewed(desk: Desk, api_client_for):
    Scan.objects.filter(pk=desk.scan.pk).update(status=Scan.Status.PROCESSING)

    response = _label(api_client_for(desk.user("analyst")), desk.scan, "confirmed_fake")

    assert response.status_code == 400
    assert response.json() == {"detail": "Only a finished scan can be reviewed: wait for its verdict."}


def test_a_viewer_is_told_why_and_a_non_member_gets_404(desk: Desk, api_client_for):
    viewer = _label(api_client_for(desk.user("viewer")), desk.scan, "confirmed_fake")
    outsider = _label(api_client_for(desk.user("non_member")), desk.scan, "confirmed_fake")

    assert viewer.status_code == 403
    assert viewer.json()["detail"] == "Viewers cannot label scans; an owner of the team can make you an analyst."
    assert outsider.status_code == 404
    assert not ScanReview.objects.exists()


# --- The result page -----------------------------------------------------------------------------------


def _page(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def test_the_page_records_a_label_and_shows_it_above_the_verdict(desk: Desk):
    client = _page(desk.user("analyst"))

    response = client.post(
        reverse("newsroom:scan-review", args=[desk.scan.pk]), {"label": "confirmed_fake", "note": "Cloned voice too"}
    )
    page = client.get(response["Location"]).content.decode()

    assert response["Location"] == reverse("scans:detail", args=[desk.scan.pk])
    assert "Your review was recorded: confirmed fake." in page
    assert "Reviewed: confirmed fake by carol, " in page and "Cloned voice too" in page
    assert page.index("data-review-text") < page.index("verdict-panel")


def test_a_viewer_sees_the_label_but_no_form(desk: Desk):
    ScanReview.objects.create(
        scan=desk.scan, label="confirmed_real", reviewer=desk.user("owner"), reviewer_name="alice"
    )

    page = _page(desk.user("viewer")).get(reverse("scans:detail", args=[desk.scan.pk])).content.decode()
    refused = _page(desk.user("viewer")).post(
        reverse("newsroom:scan-review", args=[desk.scan.pk]), {"label": "disputed"}
    )

    assert "Reviewed: confirmed real by alice, " in page
    assert "data-review-form" not in page
    assert refused.status_code == 302
    assert ScanReview.objects.count() == 1


def test_a_page_post_without_a_label_says_what_a_label_is(desk: Desk):
    client = _page(desk.user("analyst"))

    response = client.post(reverse("newsroom:scan-review", args=[desk.scan.pk]), {})

    assert (
        "A label is one of: confirmed_fake, confirmed_real, disputed."
        in client.get(response["Location"]).content.decode()
    )


# --- Exports and the webhook payload -------------------------------------------------------------------


@pytest.fixture
def reviewed(desk: Desk) -> Desk:
    ScanReview.objects.create(
        scan=desk.scan, label="confirmed_real", reviewer=desk.user("owner"), reviewer_name="alice", note="First"
    )
    ScanReview.objects.create(
        scan=desk.scan,
        label="confirmed_fake",
        reviewer=desk.user("analyst"),
        reviewer_name="carol",
        note="The agency confirmed",
        previous_label="confirmed_real",
    )
    return desk


def test_the_json_export_carries_the_label_and_its_history_and_validates(reviewed: Desk, api_client_for):
    document = api_client_for(reviewed.user("viewer")).get(reverse("api:scan-export-json", args=[reviewed.scan.pk]))

    body = document.json()
    validate_export(body)
    assert body["review"]["label"] == "confirmed_fake" and body["review"]["reviewer"] == "carol"
    assert [entry["label"] for entry in body["review_history"]] == ["confirmed_fake", "confirmed_real"]
    assert body["review_history"][0]["previous_label"] == "confirmed_real"


def test_an_unreviewed_export_still_validates(alice, api_client_for):
    scan = make_scan_row(alice, status=Scan.Status.DONE, verdict=Scan.Verdict.REAL, fake_probability=0.1, result={})

    body = json.loads(api_client_for(alice).get(reverse("api:scan-export-json", args=[scan.pk])).content)

    validate_export(body)
    assert body["review"] is None and body["review_history"] == []


def test_the_csv_has_the_current_label(reviewed: Desk):
    rows = list(csv.reader(io.StringIO(scans_export_csv(scans=[reviewed.scan]))))

    row = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert (row["review_label"], row["reviewed_by"], row["review_note"]) == (
        "confirmed_fake",
        "carol",
        "The agency confirmed",
    )
    assert row["reviewed_at"].startswith(str(datetime.now(UTC).year))


def test_the_pdf_says_the_label_before_the_verdict(reviewed: Desk, api_client_for):
    response = api_client_for(reviewed.user("viewer")).get(reverse("api:scan-export-pdf", args=[reviewed.scan.pk]))

    text = _pdf_text(b"".join(response.streaming_content) if response.streaming else response.content)
    assert "Reviewed: confirmed fake by carol" in text
    assert text.index("Reviewed: confirmed fake by carol") < text.index("Likely a deepfake")


def test_the_webhook_payload_carries_the_current_label(reviewed: Desk):
    payload = webhook_payload(scan=Scan.objects.get(pk=reviewed.scan.pk))

    assert payload["scan"]["review"]["label"] == "confirmed_fake"
    assert payload["scan"]["review"]["text"].startswith("Reviewed: confirmed fake by carol, ")


def test_a_label_is_posted_to_the_owners_webhooks_as_scan_reviewed(desk: Desk, settings, run_webhook_worker):
    from webhooks.models import WebhookDelivery
    from webhooks.services import webhook_endpoint_create
    from webhooks.tests.test_webhooks import Receiver

    settings.UNMASK_WEBHOOK_ALLOW_PRIVATE = True
    settings.UNMASK_WEBHOOK_RETRY_INTERVALS = []
    receiver = Receiver()
    try:
        endpoint = webhook_endpoint_create(owner=desk.user("analyst"), url=receiver.url)
        client = APIClient()
        client.force_login(desk.user("owner"))
        client.post(reverse("newsroom:scan-review", args=[desk.scan.pk]), {"label": "confirmed_fake", "note": "ok"})
        client.post(reverse("newsroom:scan-review", args=[desk.scan.pk]), {"label": "disputed"})

        run_webhook_worker()
    finally:
        receiver.close()

    assert [request["headers"]["X-Unmask-Event"] for request in receiver.requests] == ["scan.reviewed"] * 2
    labels = sorted(json.loads(request["body"])["scan"]["review"]["label"] for request in receiver.requests)
    # Each delivery carries the scan as it is when sent: by then the later label is the current one.
    assert labels == ["disputed", "disputed"]
    assert all(json.loads(request["body"])["event"] == "scan.reviewed" for request in receiver.requests)
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint)
    assert sorted((delivery.event, delivery.attempt) for delivery in deliveries) == [
        ("scan.reviewed", 1),
        ("scan.reviewed", 2),
    ]
