"""The command-line client (`python -m unmask_client`), run as a subprocess against the live test server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from rest_framework.authtoken.models import Token

from scans.models import Scan
from scans.tests.uploads import face_photo, gradient_png
from unmask_client.cli import EXIT_ERROR, EXIT_FAILED, EXIT_FAKE, EXIT_OK, EXIT_UNCERTAIN, exit_code_for

pytestmark = pytest.mark.django_db(transaction=True)

VERDICT_EXIT_CODES = {"real": EXIT_OK, "no_face": EXIT_OK, "fake": EXIT_FAKE, "uncertain": EXIT_UNCERTAIN}


def _client_env(*, url: str, token: str | None) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("UNMASK_")}
    env["UNMASK_URL"] = url
    if token is not None:
        env["UNMASK_TOKEN"] = token
    return env


def _client(*args: str, url: str, token: str | None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unmask_client", *args],
        cwd=django_settings.BASE_DIR,
        env=_client_env(url=url, token=token),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def token(alice) -> str:
    return Token.objects.create(user=alice).key


@pytest.fixture
def no_face_png(tmp_path: Path) -> Path:
    path = tmp_path / "gradient.png"
    path.write_bytes(gradient_png())
    return path


def _wait_until_queued(count: int, *, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while Scan.objects.filter(status=Scan.Status.QUEUED).count() < count:
        assert time.monotonic() < deadline, "the client never uploaded its files"
        time.sleep(0.1)


def test_scan_wait_prints_the_result_and_exits_with_its_verdict(
    live_server, tiny_models, run_worker, token, no_face_png, data_dir
):
    photo = face_photo(data_dir)
    client = subprocess.Popen(
        [sys.executable, "-m", "unmask_client", "scan", str(no_face_png), str(photo), "--wait", "--json"],
        cwd=django_settings.BASE_DIR,
        env=_client_env(url=live_server.url, token=token),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_until_queued(2)
        worker = run_worker()
        stdout, stderr = client.communicate(timeout=60)
    finally:
        client.kill()

    assert worker.successful_job_count == 2
    scans = json.loads(stdout)
    assert [scan["file"] for scan in scans] == [str(no_face_png), str(photo)]
    assert all(scan["status"] == "done" for scan in scans), stderr
    assert scans[0]["verdict"] == "no_face" and scans[0]["fake_probability"] is None
    stored = Scan.objects.get(pk=scans[1]["id"])
    assert scans[1]["verdict"] == stored.verdict
    photo_code = VERDICT_EXIT_CODES[stored.verdict]
    assert client.returncode == photo_code, stderr


def test_scan_without_wait_then_get_list_and_delete(live_server, tiny_models, run_worker, token, no_face_png):
    submitted = _client("scan", str(no_face_png), url=live_server.url, token=token)
    assert submitted.returncode == EXIT_OK, submitted.stderr
    scan = Scan.objects.get()
    assert str(scan.id) in submitted.stdout and "queued" in submitted.stdout

    run_worker()

    shown = _client("get", str(scan.id), "--json", url=live_server.url, token=token)
    assert shown.returncode == EXIT_OK, shown.stderr
    assert json.loads(shown.stdout)["verdict"] == "no_face"
    listed = _client("list", "--json", "--status", "done", url=live_server.url, token=token)
    assert [row["id"] for row in json.loads(listed.stdout)["results"]] == [str(scan.id)]

    deleted = _client("delete", str(scan.id), url=live_server.url, token=token)
    assert deleted.returncode == EXIT_OK, deleted.stderr
    assert not Scan.objects.filter(pk=scan.id).exists()
    gone = _client("get", str(scan.id), url=live_server.url, token=token)
    assert gone.returncode == EXIT_ERROR
    assert "No such scan" in gone.stderr


def test_a_file_the_server_refuses_exits_as_failed(live_server, tiny_models, token, tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo at all\n")

    refused = _client("scan", str(notes), "--wait", url=live_server.url, token=token)

    assert refused.returncode == EXIT_FAILED
    assert "rejected" in refused.stdout
    assert not Scan.objects.exists()


def test_a_wrong_token_is_an_authentication_error(live_server, alice, no_face_png):
    result = _client("scan", str(no_face_png), url=live_server.url, token="not-a-real-token")

    assert result.returncode == EXIT_ERROR
    assert "authentication failed" in result.stderr


def test_it_needs_a_token(no_face_png):
    result = _client("list", url="http://127.0.0.1:8000", token=None)

    assert result.returncode == EXIT_ERROR
    assert "UNMASK_TOKEN" in result.stderr


def test_an_unreachable_server_is_an_error(no_face_png):
    result = _client("list", url="http://127.0.0.1:9", token="anything", timeout=30)

    assert result.returncode == EXIT_ERROR
    assert "could not reach" in result.stderr


def test_a_usage_error_is_not_mistaken_for_a_verdict():
    result = _client("frobnicate", url="http://127.0.0.1:9", token="anything")

    assert result.returncode == EXIT_ERROR


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([("done", "real"), ("done", "no_face")], EXIT_OK),
        ([("done", "real"), ("done", "uncertain")], EXIT_UNCERTAIN),
        ([("failed", ""), ("done", "uncertain")], EXIT_FAILED),
        ([("rejected", ""), ("done", "real")], EXIT_FAILED),
        ([("failed", ""), ("done", "fake"), ("done", "uncertain")], EXIT_FAKE),
        ([("queued", ""), ("processing", "")], EXIT_OK),
    ],
)
def test_the_exit_code_ranks_fake_over_failed_over_uncertain(outcomes, expected):
    assert exit_code_for([{"status": status, "verdict": verdict} for status, verdict in outcomes]) == expected


def test_a_link_is_sent_for_the_server_to_download_and_scan(live_server, tiny_models, run_worker, token, settings):
    from scans.tests.test_url_scans import MediaServer

    settings.UNMASK_URL_SCAN_ALLOW_PRIVATE = True
    server = MediaServer()
    try:
        server.routes["/chart.png"] = (200, {"Content-Type": "image/png"}, gradient_png())
        submitted = _client("scan", server.url("/chart.png"), url=live_server.url, token=token)
        assert submitted.returncode == EXIT_OK, submitted.stderr
        assert "fetching" in submitted.stdout

        run_worker()  # the download
        run_worker()  # the analysis
    finally:
        server.close()

    scan = Scan.objects.get()
    shown = _client("get", str(scan.id), "--json", url=live_server.url, token=token)
    assert json.loads(shown.stdout)["source_url"] == server.url("/chart.png")
    assert json.loads(shown.stdout)["status"] == "done" and shown.returncode == EXIT_OK
