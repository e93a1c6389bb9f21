"""The newsroom pages in a real headless Chromium: an analyst labels a team scan, and the team, case and reviewed
scan pages fit a phone and pass axe-core. Skipped, saying why, where Chromium, Playwright or axe-core is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from newsroom.models import Membership, ScanReview, ShareLink
from newsroom.services import case_create, team_create
from scans.services import scan_create
from scans.tests.test_browser_pages import (
    DESKTOP,
    PASSWORD,
    PHONE,
    _axe_source,
    _check_layout_and_accessibility,
    _page,
)
from scans.tests.test_browser_pages import chromium as chromium_fixture
from scans.tests.uploads import face_photo, upload

# The browser fixture of the dashboard's browser tests, under its own name here.
chromium = chromium_fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def team_scan(django_user_model, data_dir, tiny_models, run_worker):
    """alice's analysed photo filed in a case of her team, where carol is an analyst."""
    alice = django_user_model.objects.create_user("alice", "alice@example.com", PASSWORD)
    carol = django_user_model.objects.create_user("carol", "carol@example.com", PASSWORD)
    team = team_create(creator=alice, name="Verification desk")
    Membership.objects.create(team=team, user=carol, role=Membership.Role.ANALYST)
    case = case_create(team=team, creator=alice, title="Flooded station photo", note="Posted at 9:40, source unknown")
    scan = scan_create(
        owner=alice, uploaded_file=upload(face_photo(data_dir).read_bytes(), "station-portrait.jpg"), case=case
    )
    assert run_worker().successful_job_count == 1
    return team, case, scan


def test_an_analyst_labels_a_team_scan_and_the_label_sits_above_the_verdict(chromium, live_server, team_scan):
    _team, _case, scan = team_scan
    page = _page(chromium, live_server, DESKTOP, user="carol")

    page.goto(f"{live_server.url}{reverse('scans:detail', args=[scan.pk])}")
    page.check("input[name=label][value=confirmed_fake]")
    page.fill("#review-note", "The station was dry that day: agency photo from 2019")
    page.click("[data-review-form] button[type=submit]")
    page.wait_for_selector("[data-review-text]")

    assert page.locator("[data-review-text]").inner_text().startswith("Reviewed: confirmed fake by carol, ")
    assert page.locator("[data-review-note]").inner_text() == "The station was dry that day: agency photo from 2019"
    review_top = page.locator("[data-review-panel]").bounding_box()["y"]
    verdict_top = page.locator(".verdict-panel").bounding_box()["y"]
    assert review_top < verdict_top
    assert ScanReview.objects.get(scan=scan).reviewer_name == "carol"

    page.check("input[name=label][value=disputed]")
    page.click("[data-review-form] button[type=submit]")
    page.wait_for_selector("[data-review-history]")
    page.click("[data-review-history] summary")
    history = page.locator("[data-review-history] li").all_inner_texts()
    assert len(history) == 2
    assert history[0].startswith("Reviewed: disputed by carol") and "(was confirmed fake)" in history[0]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_team_case_and_reviewed_scan_pages_fit_and_pass_axe(chromium, live_server, team_scan, viewport):
    team, case, scan = team_scan
    ScanReview.objects.create(scan=scan, label="confirmed_real", reviewer_name="alice", note="Checked with the agency")
    axe_source = _axe_source()
    page = _page(chromium, live_server, viewport, user="alice")

    for name, url in (
        ("teams", reverse("newsroom:teams")),
        ("team", reverse("newsroom:team", args=[team.pk])),
        ("case", reverse("newsroom:case", args=[case.pk])),
        ("reviewed-scan", reverse("scans:detail", args=[scan.pk])),
    ):
        page.goto(f"{live_server.url}{url}")
        _check_layout_and_accessibility(page, f"newsroom-{name}", viewport["width"], axe_source)


def test_a_share_link_made_on_the_page_opens_logged_out_and_stops_when_revoked(chromium, live_server, team_scan):
    _team, _case, scan = team_scan
    page = _page(chromium, live_server, DESKTOP, user="carol")

    page.goto(f"{live_server.url}{reverse('scans:detail', args=[scan.pk])}")
    page.select_option("#share-expiry", "7")
    page.click("[data-share-form] button[type=submit]")
    page.wait_for_selector("[data-share-url]")
    shared_url = page.locator("[data-share-url]").first.input_value()
    assert shared_url.startswith(f"{live_server.url}/shared/")

    # A fresh browser context: no session, no cookies, nobody logged in.
    # CSP is bypassed only so axe can be injected.
    visitor = chromium.new_context(viewport=PHONE, accept_downloads=True, bypass_csp=True).new_page()
    visitor.goto(shared_url)
    assert visitor.locator("[data-shared-banner]").inner_text().startswith("Shared view.")
    # The same verdict as the team sees.
    assert visitor.locator(".verdict-headline").inner_text() == page.locator(".verdict-headline").inner_text()
    assert visitor.locator("img[data-heatmap]").count() == 1
    visitor.wait_for_function("document.querySelector('img[data-heatmap]').naturalWidth > 0")
    assert visitor.locator(".media-card").count() == 0
    assert visitor.locator("text=Log in").count() >= 1
    _check_layout_and_accessibility(visitor, "newsroom-shared-view", PHONE["width"], _axe_source())
    with visitor.expect_download() as download_info:
        visitor.click("[data-export-pdf]")
    assert Path(download_info.value.path()).read_bytes().startswith(b"%PDF-")
    assert ShareLink.objects.get(scan=scan).view_count == 2

    page.reload()
    page.click("[data-share-link] button:has-text('Revoke')")
    page.wait_for_selector("[data-share-link][data-share-state=revoked]")
    response = visitor.goto(shared_url)
    assert response.status == 410
    assert "turned off" in visitor.locator("[data-shared-gone]").inner_text()
