"""Images and videos go to the queues UNMASK_IMAGE_QUEUE / UNMASK_VIDEO_QUEUE name, and health and metrics
count every one of them (so a GPU worker serving only `videos` is seen)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rq.job import Job

from scans.models import Scan
from scans.queues import SCAN_QUEUE, job_queue_names, scan_queue, scan_queue_names
from scans.services import scan_create
from scans.tests.test_metrics_endpoint import METRICS_URL, _parse
from scans.tests.uploads import avi_bytes, image_bytes, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_user("operator", "ops@example.com", "correct-horse-3", is_staff=True)


@pytest.fixture
def videos_queue(settings) -> str:
    """Videos routed to their own queue, as for GPU workers (`scan_worker videos scans`)."""
    settings.UNMASK_VIDEO_QUEUE = "videos"
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, "videos": {**settings.RQ_QUEUES[SCAN_QUEUE]}}
    return "videos"


def test_by_default_images_and_videos_share_the_scans_queue(settings) -> None:
    assert settings.UNMASK_IMAGE_QUEUE == settings.UNMASK_VIDEO_QUEUE == SCAN_QUEUE
    assert scan_queue_names() == [SCAN_QUEUE]


def test_a_video_scan_lands_on_the_configured_video_queue(
    alice, tiny_models, redis_conn, django_capture_on_commit_callbacks, videos_queue
):
    with django_capture_on_commit_callbacks(execute=True):
        video = scan_create(owner=alice, uploaded_file=upload(avi_bytes(), "clip.avi"))
        image = scan_create(owner=alice, uploaded_file=upload(image_bytes("PNG"), "a.png"))

    assert video.kind == Scan.Kind.VIDEO and image.kind == Scan.Kind.IMAGE
    assert redis_conn.lrange(f"rq:queue:{videos_queue}", 0, -1) == [video.job_id.encode()]
    assert redis_conn.lrange(f"rq:queue:{SCAN_QUEUE}", 0, -1) == [image.job_id.encode()]
    assert Job.fetch(video.job_id, connection=redis_conn).origin == videos_queue


def test_an_image_queue_of_its_own_is_used_for_images(
    alice, tiny_models, redis_conn, django_capture_on_commit_callbacks, settings
):
    settings.UNMASK_IMAGE_QUEUE = "photos"
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, "photos": {**settings.RQ_QUEUES[SCAN_QUEUE]}}

    with django_capture_on_commit_callbacks(execute=True):
        image = scan_create(owner=alice, uploaded_file=upload(image_bytes("PNG"), "a.png"))

    assert redis_conn.lrange("rq:queue:photos", 0, -1) == [image.job_id.encode()]
    assert redis_conn.llen(f"rq:queue:{SCAN_QUEUE}") == 0


def test_health_counts_a_worker_and_jobs_on_the_video_queue(tiny_models, api_client_for, redis_conn, videos_queue):
    from scans.worker import ScanWorker

    redis_conn.rpush(f"rq:queue:{videos_queue}", "a-video-job")
    redis_conn.rpush(f"rq:queue:{SCAN_QUEUE}", "an-image-job")
    # A GPU worker serves both queues; it is one worker, not two.
    worker = ScanWorker([scan_queue(Scan.Kind.VIDEO), scan_queue()], connection=redis_conn)
    worker.register_birth()
    try:
        body = api_client_for(None).get(reverse("api:health")).json()
    finally:
        worker.register_death()

    assert body["workers"] == 1
    assert body["queue_depth"] == 2
    assert body["status"] == "ok"


def test_metrics_report_the_video_queue(operator, api_client_for, redis_conn, videos_queue):
    scan_queue(Scan.Kind.VIDEO).enqueue("scans.jobs.analyze_scan", "not-a-scan")

    samples = _parse(api_client_for(operator).get(METRICS_URL).content.decode())

    assert samples[f'unmask_queue_jobs{{queue="{videos_queue}",state="queued"}}'] == 1
    assert samples[f'unmask_queue_jobs{{queue="{SCAN_QUEUE}",state="queued"}}'] == 0
    assert samples[f'unmask_workers{{queue="{videos_queue}"}}'] == 0


def test_a_plain_scan_worker_serves_every_scan_queue_main_queue_first_and_never_webhooks(settings, videos_queue):
    assert scan_queue_names() == [SCAN_QUEUE, videos_queue]
    assert settings.UNMASK_WEBHOOK_QUEUE not in scan_queue_names()


def test_by_default_webhook_deliveries_have_a_queue_of_their_own_which_the_metrics_report(settings) -> None:
    assert settings.UNMASK_WEBHOOK_QUEUE == "webhooks"
    assert scan_queue_names() == [SCAN_QUEUE]
    assert job_queue_names() == [SCAN_QUEUE, "webhooks"]
