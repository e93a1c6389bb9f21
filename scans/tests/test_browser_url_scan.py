"""Scan by URL in a real headless Chromium: paste a link to a page on the dashboard, watch the page follow the
download and the analysis without a reload. Skipped, saying why, where Chromium or Playwright is missing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from scans.models import Scan
from scans.tests.test_browser_pages import DESKTOP, PASSWORD, _page
from scans.tests.test_browser_pages import chromium as chromium_fixture
from scans.tests.test_url_scans import MediaServer
from scans.tests.uploads import face_photo

# The browser fixture of the dashboard's browser tests, under its own name here.
chromium = chromium_fixture

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_pasted_link_is_downloaded_and_analysed_while_the_page_follows(
    chromium, live_server, django_user_model, data_dir, tiny_models, run_worker, settings
):
    settings.UNMASK_URL_SCAN_ALLOW_PRIVATE = True
    django_user_model.objects.create_user("carol", "carol@example.com", PASSWORD)
    server = MediaServer()
    try:
        server.routes["/portrait.jpg"] = (200, {"Content-Type": "image/jpeg"}, face_photo(data_dir).read_bytes())
        server.routes["/story"] = (
            200,
            {"Content-Type": "text/html"},
            b'<html><head><meta property="og:image" content="/portrait.jpg"></head><body>News</body></html>',
        )
        page = _page(chromium, live_server, DESKTOP, user="carol")

        page.fill("input[name=source_url]", server.url("/story"))
        page.click("form.upload-form button[type=submit]")
        page.wait_for_url(f"{live_server.url}/scans/*/")
        assert page.locator("[data-scan-stage]").inner_text().startswith("Downloading the media from the link")
        assert page.locator("[data-source-url]").inner_text().startswith(server.url("/story"))

        run_worker()  # the download: the page shows the picture once it has it
        page.wait_for_selector(".media-card img")
        assert page.locator("h1").inner_text() == "portrait.jpg"
        run_worker()  # the analysis: the verdict appears without a reload
        page.wait_for_selector("img[data-heatmap]")
    finally:
        server.close()

    scan = Scan.objects.get()
    assert (scan.status, scan.kind, scan.media_url) == ("done", "image", server.url("/portrait.jpg"))
    assert page.url == f"{live_server.url}{reverse('scans:detail', args=[scan.pk])}"
