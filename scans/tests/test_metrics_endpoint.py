"""The Prometheus metrics endpoint: staff only, valid text exposition, numbers read from the database and Redis."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from scans.metrics import CONTENT_TYPE
from scans.models import Scan
from scans.queues import scan_queue
from scans.tests.uploads import make_scan_row

pytestmark = pytest.mark.django_db

METRICS_URL = reverse("api:metrics")
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(
        "operator", "ops@example.com", "correct-horse-battery-3", is_staff=True
    )


def _parse(text: str) -> dict[str, float]:
    """Checks the exposition format line by line and returns {'name{labels}': value}."""
    samples: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _hash, _type, name, metric_type = line.split(" ")
            assert metric_type in {"gauge", "counter", "summary"}
            typed.add(name)
            continue
        if line.startswith("# HELP "):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a valid sample line: {line!r}"
        name = match.group(1)
        assert name.removesuffix("_sum").removesuffix("_count") in typed, f"{name} has no TYPE line before it"
        samples[name + (match.group(2) or "")] = float(match.group(3))
    assert text.endswith("\n")
    return samples


def test_only_staff_can_read_the_metrics(alice, staff, api_client_for):
    assert api_client_for(None).get(METRICS_URL).status_code == 401
    assert api_client_for(alice).get(METRICS_URL).status_code == 403

    response = api_client_for(staff).get(METRICS_URL, HTTP_ACCEPT="text/plain")

    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE


def test_scans_are_counted_by_status_verdict_and_kind(alice, staff, api_client_for, redis_conn):
    for _ in range(2):
        make_scan_row(alice, status=Scan.Status.DONE, verdict=Scan.Verdict.REAL)
    make_scan_row(alice, status=Scan.Status.DONE, verdict=Scan.Verdict.FAKE, kind=Scan.Kind.VIDEO)
    make_scan_row(alice, status=Scan.Status.FAILED)
    make_scan_row(alice)

    samples = _parse(api_client_for(staff).get(METRICS_URL).content.decode())

    assert samples['unmask_scans{status="done",verdict="real",kind="image"}'] == 2
    assert samples['unmask_scans{status="done",verdict="fake",kind="video"}'] == 1
    assert samples['unmask_scans{status="failed",verdict="",kind="image"}'] == 1
    assert samples['unmask_scans{status="queued",verdict="",kind="image"}'] == 1


def test_queue_depth_and_redis_state_come_from_redis(staff, api_client_for, redis_conn):
    for index in range(3):
        scan_queue().enqueue("scans.jobs.analyze_scan", f"not-a-scan-{index}")

    samples = _parse(api_client_for(staff).get(METRICS_URL).content.decode())

    assert samples["unmask_redis_up"] == 1
    assert samples['unmask_queue_jobs{queue="scans",state="queued"}'] == 3
    assert samples['unmask_queue_jobs{queue="scans",state="failed"}'] == 0
    assert samples['unmask_workers{queue="scans"}'] == 0


def test_an_unreachable_redis_is_reported_not_raised(staff, api_client_for, settings):
    settings.RQ_QUEUES = {name: {**queue, "URL": "redis://127.0.0.1:1/0"} for name, queue in settings.RQ_QUEUES.items()}

    response = api_client_for(staff).get(METRICS_URL)

    assert response.status_code == 200
    assert _parse(response.content.decode())["unmask_redis_up"] == 0


def test_stage_latencies_are_summarised_from_stored_timings(alice, staff, api_client_for, redis_conn):
    now = timezone.now()
    for seconds in (1.0, 2.0, 3.0, 4.0):
        scan = make_scan_row(
            alice,
            status=Scan.Status.DONE,
            verdict=Scan.Verdict.REAL,
            timings={"detect_s": seconds / 10, "total_s": seconds},
            finished_at=now,
        )
        Scan.objects.filter(pk=scan.pk).update(started_at=scan.created_at + timedelta(seconds=seconds * 2))
    make_scan_row(alice, status=Scan.Status.FAILED, timings={"total_s": 99.0})

    samples = _parse(api_client_for(staff).get(METRICS_URL).content.decode())

    assert samples['unmask_scan_stage_seconds{quantile="0.5",kind="image",stage="total"}'] == 2.0
    assert samples['unmask_scan_stage_seconds{quantile="0.99",kind="image",stage="total"}'] == 4.0
    assert samples['unmask_scan_stage_seconds_sum{kind="image",stage="total"}'] == 10.0
    assert samples['unmask_scan_stage_seconds_count{kind="image",stage="total"}'] == 4
    assert samples['unmask_scan_stage_seconds_sum{kind="image",stage="detect"}'] == pytest.approx(1.0)
    assert samples['unmask_scan_queue_wait_seconds{quantile="0.9",kind="image"}'] == pytest.approx(8.0)


def test_the_active_models_are_exposed(staff, api_client_for, tiny_models, redis_conn):
    image_version, video_version = tiny_models

    samples = _parse(api_client_for(staff).get(METRICS_URL).content.decode())

    assert samples[f'unmask_model_active{{kind="image",label="{image_version.label}"}}'] == 1
    assert samples[f'unmask_model_active{{kind="video",label="{video_version.label}"}}'] == 1
