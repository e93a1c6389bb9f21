"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright, no browser download).

Logs in, uploads a real face photo, watches the progress bar while the scan waits, lets a real worker run
it, sees the face box and the heatmap appear without a reload, exports the PDF and keeps a screenshot of
the result page in test-artifacts/. Skipped, saying why, where Chromium or Playwright is not installed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connections

from scans.models import Scan
from scans.tests.browser import wait_until
from scans.tests.uploads import face_photo

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(django_settings.BASE_DIR) / "test-artifacts"
PASSWORD = "correct-horse-battery-9"


@pytest.fixture
def browser_page(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes between browser
    # steps are still plain synchronous code, which Django would otherwise refuse.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()
            # Left open after a live-server test, this thread's connections keep the test database from
            # being dropped at the end of the session.
            connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_a_photo_scan_in_the_browser(browser_page, live_server, django_user_model, data_dir, tiny_models, run_worker):
    page = browser_page
    django_user_model.objects.create_user("carol", "carol@example.com", PASSWORD)

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/scans/")

    page.set_input_files("input[type=file][name=file]", str(face_photo(data_dir)))
    page.click("form.upload-form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/scans/*/")
    assert page.locator("[data-scan-progress]").is_visible()
    assert page.locator("[data-scan-status]").first.inner_text().strip() in {"Queued", "Processing"}

    worker = run_worker()
    assert worker.successful_job_count == 1
    assert Scan.objects.get().status == Scan.Status.DONE

    # The page polls the API and swaps in the finished result by itself.
    page.wait_for_selector("img[data-heatmap]")
    wait_until(page, "document.querySelector('img[data-heatmap]').naturalWidth > 0")
    assert page.locator(".face-box").count() == 1
    assert "%" in page.locator(".face-box .face-label").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "scan-result-page.png"), full_page=True)

    with page.expect_download() as download_info:
        page.click("[data-export-pdf]")
    report = Path(download_info.value.path()).read_bytes()
    assert report.startswith(b"%PDF-")

    page.goto(f"{live_server.url}/scans/")
    assert page.locator("input[type=checkbox][name=scan_ids]").count() == 1
    page.screenshot(path=str(ARTIFACTS / "history-page.png"), full_page=True)
