"""Every main page in a real headless Chromium at 1366 px (desktop) and 390 px (phone).

For each page: nothing scrolls sideways at 390 px, and axe-core (the real accessibility engine, installed from
the npm registry by `make test`) reports no serious or critical violation. The result pages are then used as a
reviewer would: the People tracked table shows its Verdict at 1366 px, a timeline point seeks the video from
the keyboard, the face box is drawn over the playing video, evidence and key frames open large with a heatmap
opacity slider, a refused upload keeps its file, the batch header follows its scans without a reload.
Screenshots of every page go to test-artifacts/; the two in the README (an image and a video result) are
written to docs/screenshots/ only when UNMASK_UPDATE_SCREENSHOTS=1 is set, so a test run leaves the checkout
clean (`UNMASK_UPDATE_SCREENSHOTS=1 make test PYTEST_ARGS=scans/tests/test_browser_pages.py` refreshes them).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connections
from django.urls import reverse

from scans.models import Scan
from scans.services import scan_create
from scans.tests.browser import wait_until
from scans.tests.uploads import face_photo, short_clip, upload
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_endpoint_create

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(django_settings.BASE_DIR) / "test-artifacts"
README_SCREENSHOTS = (
    Path(django_settings.BASE_DIR) / "docs" / "screenshots"
    if os.environ.get("UNMASK_UPDATE_SCREENSHOTS") == "1"
    else ARTIFACTS
)
# Where `make test` installs axe-core (npm registry); UNMASK_AXE_JS points elsewhere.
AXE_JS = Path(django_settings.BASE_DIR) / "var" / "test-tools" / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "correct-horse-battery-9"
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
SERIOUS = ("serious", "critical")

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def chromium(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
        )
        try:
            yield browser
        finally:
            browser.close()
            connections.close_all()


def _axe_source() -> str:

    path = Path(os.environ.get("UNMASK_AXE_JS") or AXE_JS)
    if not path.is_file():
        pytest.skip(
            f"axe-core not found at {path} (make test installs it: npm install --prefix var/test-tools axe-core)"
        )
    return path.read_text()


def _page(browser, live_server, viewport: dict, *, user: str | None = None):
    """A page at `viewport`, logged in as `user` when given. CSP is bypassed only so axe can be injected."""
    context = browser.new_context(viewport=viewport, bypass_csp=True, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    if user:
        page.goto(f"{live_server.url}{reverse('accounts:login')}")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", PASSWORD)
        page.click("form button[type=submit]")
        page.wait_for_url(f"{live_server.url}{reverse('scans:dashboard')}")
    return page


def _check_layout_and_accessibility(page, name: str, width: int, axe_source: str) -> None:
    scroll_width = page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll_width <= width, f"{name} scrolls sideways at {width} px ({scroll_width} px wide)"
    page.add_script_tag(content=axe_source)
    violations = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"
    )
    serious = [violation for violation in violations if violation["impact"] in SERIOUS]
    assert not serious, f"{name} at {width} px: {serious}"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)


def _playable_clip(data_dir: Path) -> Path:
    """The smallest shared H.264 clip: Chromium plays H.264, not the MPEG-4 Part 2 of the short Celeb-DF clips."""
    import cv2

    def is_h264(path: Path) -> bool:
        capture = cv2.VideoCapture(str(path))
        try:
            return int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") == b"h264"
        finally:
            capture.release()

    clips = sorted((data_dir / "videos").glob("*/*/*.mp4"), key=lambda path: path.stat().st_size)
    return next((clip for clip in clips if is_h264(clip)), None) or short_clip(data_dir)


@pytest.fixture
def reviewer_data(django_user_model, data_dir, tiny_models, run_worker, settings):
    """A reviewer with an analysed photo, an analysed video, a batch and a webhook with a delivery."""
    settings.UNMASK_VIDEO_FRAMES = 8
    user = django_user_model.objects.create_user("carol", "carol@example.com", PASSWORD)
    photo = face_photo(data_dir)
    clip = _playable_clip(data_dir)
    image_scan = scan_create(owner=user, uploaded_file=upload(photo.read_bytes(), "newsroom-portrait.jpg"))
    video_scan = scan_create(owner=user, uploaded_file=upload(clip.read_bytes(), "press-conference-clip.mp4"))
    from scans.batches import batch_create

    batch = batch_create(
        owner=user,
        uploaded_files=[upload(photo.read_bytes(), "batch-photo.jpg"), upload(b"not an image", "notes.jpg")],
    )
    endpoint = webhook_endpoint_create(
        owner=user, url="https://hooks.example.com/unmask/receiver/with/a/long/path/1234567890"
    )
    worker = run_worker()
    assert worker.failed_job_count == 0
    WebhookDelivery.objects.create(
        endpoint=endpoint,
        scan=image_scan,
        scan_reference=image_scan.pk,
        event="scan.finished",
        attempt=1,
        succeeded=False,
        error="connection refused by the receiver after 10 s",
    )
    image_scan.refresh_from_db()
    video_scan.refresh_from_db()
    assert image_scan.status == video_scan.status == Scan.Status.DONE
    return {"user": user, "image": image_scan, "video": video_scan, "batch": batch}


def test_every_main_page_fits_a_phone_and_passes_axe_at_both_widths(chromium, live_server, reviewer_data):
    axe_source = _axe_source()
    image, video, batch = reviewer_data["image"], reviewer_data["video"], reviewer_data["batch"]
    public = {"landing": reverse("landing"), "signup": reverse("accounts:signup"), "login": reverse("accounts:login")}
    private = {
        "upload-and-history": reverse("scans:dashboard"),
        "history-filtered": reverse("scans:dashboard") + "?verdict=fake&kind=image&date_from=2026-01-01",
        "image-result": reverse("scans:detail", args=[image.id]),
        "video-result": reverse("scans:detail", args=[video.id]),
        "batch": reverse("scans:batch", args=[batch.id]),
        "webhooks": reverse("webhooks:endpoints"),
        "api-token": reverse("accounts:api_token"),
    }
    for viewport in (DESKTOP, PHONE):
        anonymous = _page(chromium, live_server, viewport)
        for name, url in public.items():
            anonymous.goto(f"{live_server.url}{url}")
            _check_layout_and_accessibility(anonymous, name, viewport["width"], axe_source)
        anonymous.context.close()
        page = _page(chromium, live_server, viewport, user="carol")
        for name, url in private.items():
            page.goto(f"{live_server.url}{url}")
            _check_layout_and_accessibility(page, name, viewport["width"], axe_source)
            assert page.locator("nav [aria-current=page]").count() == 1, f"{name}: one current nav item"
        page.context.close()


def test_the_result_pages_are_usable_by_a_reviewer(chromium, live_server, reviewer_data):
    image, video = reviewer_data["image"], reviewer_data["video"]
    page = _page(chromium, live_server, DESKTOP, user="carol")

    # Photo: zoom into the evidence and fade the heatmap.
    page.goto(f"{live_server.url}{reverse('scans:detail', args=[image.id])}")
    wait_until(page, "document.querySelector('img[data-heatmap]').naturalWidth > 0")
    README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(README_SCREENSHOTS / "image-result.png"), full_page=True)
    page.click("button[data-zoom]")
    dialog = page.locator("dialog[data-zoom-dialog]")
    assert dialog.is_visible()
    page.fill("input[data-zoom-slider]", "20")
    page.dispatch_event("input[data-zoom-slider]", "input")
    assert page.evaluate("getComputedStyle(document.querySelector('[data-zoom-overlay]')).opacity") == "0.2"
    page.keyboard.press("Escape")
    assert not dialog.is_visible()

    # Video: the People tracked table shows its Verdict at 1366 px, next to the person's score.
    page.goto(f"{live_server.url}{reverse('scans:detail', args=[video.id])}")
    verdict_cell = page.locator("table.people td[data-label=Verdict]").first
    box = verdict_cell.bounding_box()
    assert verdict_cell.is_visible() and box["x"] + box["width"] <= DESKTOP["width"]
    assert page.locator("[data-scoring-sentence]").first.is_visible()
    people = page.locator("table.people tbody tr").count()
    counted = f"{people} {'person' if people == 1 else 'people'}, "
    assert page.locator("[data-verdict-counts]").inner_text().startswith(counted)
    wait_until(page, "document.querySelector('video[data-scan-video]').readyState >= 1")
    page.screenshot(path=str(README_SCREENSHOTS / "video-result.png"), full_page=True)

    # A timeline point, reached by keyboard, seeks the player; the tracked face is boxed over the video.
    point = page.locator("circle[data-seek]").nth(3)
    seek = float(point.get_attribute("data-seek"))
    point.focus()
    page.keyboard.press("Enter")
    wait_until(page, f"Math.abs(document.querySelector('video[data-scan-video]').currentTime - {seek}) < 0.2")
    page.evaluate("document.querySelector('video[data-scan-video]').pause()")
    overlay_box = page.locator("[data-video-overlay] .face-box").first
    wait_until(page, "!document.querySelector('[data-video-overlay] .face-box').hidden")
    assert overlay_box.bounding_box()["width"] > 5

    # Key frames (if the tiny model left any) open large.
    key_frames = page.locator(".key-frame-button")
    if key_frames.count():
        key_frames.first.click()
        assert page.locator("dialog[data-zoom-dialog] img[data-zoom-image]").bounding_box()["width"] > 300
        page.keyboard.press("Escape")


def test_a_refused_upload_keeps_the_chosen_file_and_shows_why(chromium, live_server, reviewer_data, tmp_path):
    page = _page(chromium, live_server, PHONE, user="carol")
    not_a_photo = tmp_path / "holiday-notes.jpg"
    not_a_photo.write_text("these are notes, not a photo")

    page.set_input_files("input[data-upload-input]", str(not_a_photo))
    assert "holiday-notes.jpg" in page.locator("[data-file-name]").inner_text()
    page.click("form[data-upload-form] button[type=submit]")

    page.wait_for_selector("[data-upload-errors]")
    assert "this is a text document" in page.locator("[data-upload-errors]").inner_text().lower()
    assert page.evaluate("document.querySelector('input[data-upload-input]').files[0].name") == "holiday-notes.jpg"
    assert page.url.endswith(reverse("scans:dashboard"))


def test_an_upload_goes_through_the_progress_bar_and_the_queued_message_goes_when_done(
    chromium, live_server, django_user_model, data_dir, tiny_models, run_worker
):
    django_user_model.objects.create_user("carol", "carol@example.com", PASSWORD)
    page = _page(chromium, live_server, DESKTOP, user="carol")

    page.set_input_files("input[data-upload-input]", str(face_photo(data_dir)))
    page.click("form[data-upload-form] button[type=submit]")
    page.wait_for_url(f"{live_server.url}/scans/*/")
    assert page.locator("[data-while-running]").is_visible()
    assert page.locator("progress[data-scan-progress]").get_attribute("aria-label")

    run_worker()
    page.wait_for_selector("img[data-heatmap]")
    page.wait_for_selector("[data-while-running]", state="detached")


def test_the_batch_header_follows_its_scans_without_a_reload(
    chromium, live_server, django_user_model, data_dir, tiny_models, run_worker
):
    from scans.batches import batch_create

    user = django_user_model.objects.create_user("carol", "carol@example.com", PASSWORD)
    photo = face_photo(data_dir).read_bytes()
    batch = batch_create(owner=user, uploaded_files=[upload(photo, "one.jpg"), upload(photo[::-1], "two.jpg")])
    page = _page(chromium, live_server, DESKTOP, user="carol")
    page.goto(f"{live_server.url}{reverse('scans:batch', args=[batch.id])}")
    assert "still analysing" in page.locator("[data-batch-status]").inner_text()
    assert page.locator("nav [aria-current=page]").inner_text() == "Batches"

    run_worker()

    wait_until(page, "document.querySelector('[data-batch-status]').textContent.includes('all finished')")
    assert page.locator("[data-batch-summary]").is_visible()


CONTRAST_JS = """
(selector) => {
  const rgb = (colour) => colour.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const luminance = ([r, g, b]) => {
    const [R, G, B] = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  const ratio = (a, b) => { const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const element = document.querySelector(selector);
  const style = getComputedStyle(element);
  const page = getComputedStyle(element.closest('.card') || document.body).backgroundColor;
  return {border: ratio(rgb(style.borderTopColor), rgb(page)), text: ratio(rgb(style.color), rgb(style.backgroundColor))};
}
"""


def test_input_borders_and_the_uncertain_badge_have_enough_contrast(chromium, live_server):
    page = _page(chromium, live_server, DESKTOP)
    page.goto(f"{live_server.url}{reverse('accounts:signup')}")
    assert page.evaluate(CONTRAST_JS, "input[name=username]")["border"] >= 3.0

    page.goto(f"{live_server.url}{reverse('landing')}")
    assert page.evaluate(CONTRAST_JS, ".badge-uncertain")["text"] >= 4.5
