"""The newsroom pages in a real headless Chromium: an analyst labels a team scan, the team, case and reviewed
scan pages fit a phone and pass axe-core, and share links of a photo and of a video open logged out. Skipped, saying why, where Chromium, Playwright or axe-core is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from newsroom.models import AuditEvent, Membership, ScanReview, ShareLink
from newsroom.services import case_create, team_create
from scans.services import scan_create
from scans.tests.browser import wait_until
from scans.tests.test_browser_pages import (
    DESKTOP,
    PASSWORD,
    PHONE,
    _axe_source,
    _check_layout_and_accessibility,
    _page,
    _playable_clip,
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
    assert "cannot be shown again" in page.locator("[data-share-new]").inner_text()

    # A fresh browser context: no session, no cookies, nobody logged in.
    # CSP is bypassed only so axe can be injected.
    visitor = chromium.new_context(viewport=PHONE, accept_downloads=True, bypass_csp=True).new_page()
    visitor.goto(shared_url)
    assert visitor.locator("[data-shared-banner]").inner_text().startswith("Shared view.")
    # The same verdict as the team sees.
    assert visitor.locator(".verdict-headline").inner_text() == page.locator(".verdict-headline").inner_text()
    assert visitor.locator("img[data-heatmap]").count() == 1
    wait_until(visitor, "document.querySelector('img[data-heatmap]').naturalWidth > 0")
    assert visitor.locator(".media-card").count() == 0
    assert visitor.locator("text=Log in").count() >= 1
    _check_layout_and_accessibility(visitor, "newsroom-shared-view", PHONE["width"], _axe_source())
    with visitor.expect_download() as download_info:
        visitor.click("[data-export-pdf]")
    assert Path(download_info.value.path()).read_bytes().startswith(b"%PDF-")
    assert ShareLink.objects.get(scan=scan).view_count == 2

    # The URL is on the page that answered Create link, only there: the result page lists the link by its prefix.
    page.goto(f"{live_server.url}{reverse('scans:detail', args=[scan.pk])}")
    assert page.locator("[data-share-url]").count() == 0
    assert page.locator("[data-share-prefix]").first.inner_text() == f"{shared_url.split('/')[-2][:8]}…"
    page.click("[data-share-link] button:has-text('Revoke')")
    page.wait_for_selector("[data-share-link][data-share-state=revoked]")
    response = visitor.goto(shared_url)
    assert response.status == 410
    assert "turned off" in visitor.locator("[data-shared-gone]").inner_text()


@pytest.fixture
def team_video_scan(django_user_model, data_dir, tiny_models, run_worker, settings):
    """alice's analysed video filed in a case of her team, where carol is an analyst."""
    settings.UNMASK_VIDEO_FRAMES = 8
    alice = django_user_model.objects.create_user("alice", "alice@example.com", PASSWORD)
    carol = django_user_model.objects.create_user("carol", "carol@example.com", PASSWORD)
    team = team_create(creator=alice, name="Verification desk")
    Membership.objects.create(team=team, user=carol, role=Membership.Role.ANALYST)
    case = case_create(team=team, creator=alice, title="Press conference clip", note="Sent by a reader")
    clip = _playable_clip(data_dir)
    scan = scan_create(owner=alice, uploaded_file=upload(clip.read_bytes(), "press-conference.mp4"), case=case)
    assert run_worker().successful_job_count == 1
    scan.refresh_from_db()
    assert scan.status == "done" and scan.kind == "video"
    return scan


def test_a_share_link_of_a_video_opens_logged_out_and_plays_its_evidence(chromium, live_server, team_video_scan):
    scan = team_video_scan
    page = _page(chromium, live_server, DESKTOP, user="carol")

    page.goto(f"{live_server.url}{reverse('scans:detail', args=[scan.pk])}")
    page.check("[data-share-form] input[name=include_original]")
    page.click("[data-share-form] button[type=submit]")
    page.wait_for_selector("[data-share-url]")
    shared_url = page.locator("[data-share-url]").first.input_value()

    # A fresh browser context: no session, no cookies, nobody logged in. CSP is bypassed only so axe can be injected.
    visitor = chromium.new_context(viewport=PHONE, bypass_csp=True).new_page()
    visitor.set_default_timeout(30_000)
    visitor.goto(shared_url)
    assert visitor.locator("[data-shared-banner]").inner_text().startswith("Shared view.")
    assert visitor.locator("text=Log in").count() >= 1
    assert visitor.locator("[data-source-url], [data-scan-owner], [data-share-card]").count() == 0
    # The same verdict and the same people as the team sees.
    assert visitor.locator(".verdict-headline").inner_text() == page.locator(".verdict-headline").inner_text()
    people = page.locator("table.people tbody tr").count()
    assert people >= 1 and visitor.locator("table.people tbody tr").count() == people

    # The original plays from the shared link, and a timeline point seeks it from the keyboard.
    wait_until(visitor, "document.querySelector('video[data-scan-video]').readyState >= 1")
    assert visitor.locator("video[data-scan-video]").get_attribute("src").startswith("/shared/")
    points = visitor.locator("svg[data-timeline] circle[data-seek]")
    assert points.count() >= 2
    point = points.nth(1)
    seek = float(point.get_attribute("data-seek"))
    point.focus()
    visitor.keyboard.press("Enter")
    wait_until(visitor, f"Math.abs(document.querySelector('video[data-scan-video]').currentTime - {seek}) < 0.2")
    visitor.evaluate("document.querySelector('video[data-scan-video]').pause()")

    # The evidence images (face crops' heatmaps, key frames) come through the share link too.
    wait_until(
        visitor,
        "[...document.querySelectorAll('img[data-heatmap]')].every(image => image.complete && image.naturalWidth > 0)",
    )
    key_frames = visitor.locator(".key-frame-button")
    if key_frames.count():
        key_frames.first.click()
        wait_until(visitor, "document.querySelector('dialog[data-zoom-dialog] img[data-zoom-image]').naturalWidth > 0")
        visitor.keyboard.press("Escape")
    _check_layout_and_accessibility(visitor, "newsroom-shared-video", PHONE["width"], _axe_source())
    # The page was viewed, and the original played (the player may ask for it in more than one range request).
    viewed = AuditEvent.objects.filter(action=AuditEvent.Action.VIEWED_SHARED, scan_reference=scan.pk)
    assert {event.detail["what"] for event in viewed} == {"page", "original"}
