"""Memory per upload check: a video is refused over its pixel limit from its headers, before any frame is decoded,
so a small file with enormous frames cannot make the web process allocate gigabytes.

The peak RSS is measured in a fresh subprocess that runs the real upload check (`inspect_upload`) on a real file:
a Motion-JPEG AVI whose frames are 15000x15000 (5 MB on disk; decoding one frame costs about 1.5 GB).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse
from PIL import Image

from scans.models import Scan
from scans.tests.uploads import avi_bytes, flat_gray_jpeg, mjpeg_avi, upload

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
# The bound on what checking one upload may add to the web process's peak memory.
MAX_PEAK_GROWTH_MB = 200
HUGE_SIDE = 15_000

# Runs in a fresh interpreter: one small AVI first (so FFmpeg and Pillow are loaded, as in a running web process),
# then the file under test; prints the check's outcome and how much the process's peak RSS grew during it.
_CHECK_ONE_UPLOAD = """
import json, resource, sys
from pathlib import Path

import django

django.setup()
from scans.uploads import UploadDigester, UploadRejected, inspect_upload


def check(path):
    digester = UploadDigester()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digester.update(chunk)
    try:
        return {"accepted": inspect_upload(Path(path), digester.digest()).name}
    except UploadRejected as exc:
        return {"status": exc.status_code, "message": exc.message}


check(sys.argv[1])
before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outcome = check(sys.argv[2])
outcome["peak_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_kb) / 1024
print(json.dumps(outcome))
"""


def _check_in_fresh_process(path: Path, tmp_path: Path) -> dict:
    warm_up = tmp_path / "warm-up.avi"
    warm_up.write_bytes(avi_bytes())
    completed = subprocess.run(
        [sys.executable, "-c", _CHECK_ONE_UPLOAD, str(warm_up), str(path)],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def huge_frame() -> bytes:
    frame = flat_gray_jpeg(HUGE_SIDE, HUGE_SIDE)
    # A real image of that size, not a header that merely says so: it decodes (here at 1/8 scale, to keep the
    # test's own memory small) to the full 15000x15000 picture. Pillow's own bomb guard is lifted for this look only.
    bomb_guard, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(io.BytesIO(frame)) as image:
            assert image.size == (HUGE_SIDE, HUGE_SIDE)
            image.draft("L", (HUGE_SIDE // 8, HUGE_SIDE // 8))
            image.load()
            assert image.size == (HUGE_SIDE // 8, HUGE_SIDE // 8)
    finally:
        Image.MAX_IMAGE_PIXELS = bomb_guard
    return frame


def test_a_video_with_15000x15000_frames_is_refused_from_its_headers_in_bounded_memory(huge_frame, tmp_path):
    path = tmp_path / "huge.avi"
    path.write_bytes(mjpeg_avi([huge_frame, huge_frame], width=HUGE_SIDE, height=HUGE_SIDE))
    assert path.stat().st_size < 8 * 1024 * 1024

    outcome = _check_in_fresh_process(path, tmp_path)

    assert outcome["status"] == 413
    assert "15000\N{MULTIPLICATION SIGN}15000 pixels" in outcome["message"]
    assert outcome["peak_growth_mb"] < MAX_PEAK_GROWTH_MB, outcome


def test_a_video_whose_container_understates_its_frame_size_is_refused_in_bounded_memory_too(huge_frame, tmp_path):
    path = tmp_path / "understated.avi"
    path.write_bytes(mjpeg_avi([huge_frame], width=64, height=48))

    outcome = _check_in_fresh_process(path, tmp_path)

    # FFmpeg's stream parser reads the size from the frame's own JPEG header, still without decoding it.
    assert outcome["status"] == 413
    assert outcome["peak_growth_mb"] < MAX_PEAK_GROWTH_MB, outcome


def test_a_video_at_the_pixel_limit_is_decoded_and_accepted_within_the_bound(settings, tmp_path):
    width, height = 4096, 2160
    assert width * height <= settings.UNMASK_MAX_VIDEO_PIXELS
    path = tmp_path / "4k.avi"
    path.write_bytes(mjpeg_avi([flat_gray_jpeg(width, height)], width=width, height=height))

    outcome = _check_in_fresh_process(path, tmp_path)

    assert outcome["accepted"] == "AVI"
    assert outcome["peak_growth_mb"] < MAX_PEAK_GROWTH_MB, outcome


@pytest.mark.django_db
def test_the_api_answers_413_for_huge_frames_and_keeps_nothing(
    alice, tiny_models, api_client_for, redis_conn, huge_frame, _private_media
):
    content = mjpeg_avi([huge_frame], width=HUGE_SIDE, height=HUGE_SIDE)

    response = api_client_for(alice).post(
        reverse("api:scan-list"), {"file": upload(content, "huge.avi")}, format="multipart"
    )

    assert response.status_code == 413
    assert "at most 8,847,360 pixels a frame" in response.json()["detail"]
    assert not Scan.objects.exists()
    assert not any(path.is_file() for path in _private_media.rglob("*"))


@pytest.mark.django_db
def test_the_video_pixel_limit_is_configurable(alice, tiny_models, api_client_for, redis_conn, settings):
    settings.UNMASK_MAX_VIDEO_PIXELS = 64 * 48 - 1

    response = api_client_for(alice).post(
        reverse("api:scan-list"), {"file": upload(avi_bytes(size=(64, 48)), "small.avi")}, format="multipart"
    )

    assert response.status_code == 413
    assert f"{64 * 48 - 1:,} pixels a frame" in response.json()["detail"]
