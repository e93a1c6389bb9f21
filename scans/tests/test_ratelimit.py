"""Upload rate limit and daily quota: counted in Redis per user, 429 with Retry-After over the limit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.urls import reverse

from scans.models import Scan
from scans.ratelimit import upload_attempt_register, upload_quota_used
from scans.tests.uploads import image_bytes, upload

pytestmark = pytest.mark.django_db

LIST_URL = reverse("api:scan-list")
DASHBOARD_URL = reverse("scans:dashboard")
# A window so long that no test run straddles two of them (a fixed window restarts at its boundary).
LONG_WINDOW_S = 10**9


def _post(client, content: bytes | None = None):
    return client.post(LIST_URL, {"file": upload(content or image_bytes("PNG"), "a.png")}, format="multipart")


def test_uploads_over_the_rate_limit_get_429_with_retry_after(alice, tiny_models, api_client_for, redis_conn, settings):
    settings.UNMASK_UPLOAD_RATE_LIMIT = 2
    settings.UNMASK_UPLOAD_RATE_WINDOW = LONG_WINDOW_S
    client = api_client_for(alice)

    statuses = [_post(client).status_code for _ in range(3)]
    refused = _post(client)

    assert statuses == [202, 202, 429]
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= LONG_WINDOW_S
    assert "Too many uploads" in refused.json()["detail"]
    assert Scan.objects.count() == 2


def test_the_limit_is_per_user(alice, bob, tiny_models, api_client_for, redis_conn, settings):
    settings.UNMASK_UPLOAD_RATE_LIMIT = 1
    settings.UNMASK_UPLOAD_RATE_WINDOW = LONG_WINDOW_S

    assert _post(api_client_for(alice)).status_code == 202
    assert _post(api_client_for(alice)).status_code == 429
    assert _post(api_client_for(bob)).status_code == 202


def test_rejected_uploads_count_against_the_rate_but_not_the_quota(
    alice, tiny_models, api_client_for, redis_conn, settings
):
    settings.UNMASK_UPLOAD_RATE_LIMIT = 3
    settings.UNMASK_UPLOAD_RATE_WINDOW = LONG_WINDOW_S
    client = api_client_for(alice)

    assert _post(client, b"just text").status_code == 400
    assert client.post(LIST_URL, {}, format="multipart").status_code == 400
    assert _post(client).status_code == 202

    assert upload_quota_used(user=alice) == 1
    assert _post(client).status_code == 429


def test_the_daily_quota_counts_accepted_scans(alice, tiny_models, api_client_for, redis_conn, settings):
    settings.UNMASK_UPLOAD_DAILY_QUOTA = 2
    client = api_client_for(alice)

    accepted = [_post(client).status_code for _ in range(2)]
    refused = _post(client)

    assert accepted == [202, 202]
    assert refused.status_code == 429
    assert "quota" in refused.json()["detail"]
    assert 1 <= int(refused["Retry-After"]) <= 24 * 3600 + 1
    assert upload_quota_used(user=alice) == 2


def test_limits_of_zero_are_off(alice, tiny_models, api_client_for, redis_conn, settings):
    settings.UNMASK_UPLOAD_RATE_LIMIT = 0
    settings.UNMASK_UPLOAD_DAILY_QUOTA = 0
    client = api_client_for(alice)

    assert [_post(client).status_code for _ in range(4)] == [202] * 4
    assert not redis_conn.keys("unmask:uploads:*")


def test_the_dashboard_shows_the_limit_with_429(alice, tiny_models, client, redis_conn, settings):
    settings.UNMASK_UPLOAD_RATE_LIMIT = 1
    settings.UNMASK_UPLOAD_RATE_WINDOW = LONG_WINDOW_S
    client.force_login(alice)

    first = client.post(DASHBOARD_URL, {"file": upload(image_bytes("PNG"), "a.png")})
    second = client.post(DASHBOARD_URL, {"file": upload(image_bytes("PNG"), "b.png")})

    assert first.status_code == 302
    assert second.status_code == 429
    assert int(second["Retry-After"]) >= 1
    assert "Too many uploads" in second.content.decode()
    assert Scan.objects.count() == 1


def test_the_counters_hold_across_processes(alice, tiny_models, api_client_for, redis_conn, settings):
    """Another web process's uploads (here a separate Python process) count towards the same limit."""
    settings.UNMASK_UPLOAD_RATE_LIMIT = 2
    settings.UNMASK_UPLOAD_RATE_WINDOW = LONG_WINDOW_S
    database = connection.settings_dict
    script = (
        "import django; django.setup()\n"
        "from types import SimpleNamespace\n"
        "from scans.ratelimit import upload_attempt_register\n"
        f"upload_attempt_register(user=SimpleNamespace(pk={alice.pk}))\n"
        f"upload_attempt_register(user=SimpleNamespace(pk={alice.pk}))\n"
    )
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "deepfake_site.settings",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/x",
        "REDIS_URL": django_settings.REDIS_URL,
        "UNMASK_UPLOAD_RATE_LIMIT": "2",
        "UNMASK_UPLOAD_RATE_WINDOW": str(LONG_WINDOW_S),
    }

    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    assert _post(api_client_for(alice)).status_code == 429


def test_the_limits_are_not_enforced_while_redis_is_unreachable(alice, settings, caplog):
    """The upload then fails to enqueue and says so; a limiter error would only hide that clearer message."""
    settings.UNMASK_UPLOAD_RATE_LIMIT = 1
    settings.RQ_QUEUES = {"scans": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60}}

    upload_attempt_register(user=alice)
    upload_attempt_register(user=alice)

    assert "Redis is unreachable" in caplog.text
