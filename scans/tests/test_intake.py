"""The one upload intake: every way in (API, dashboard, each file of a batch) counts the attempt and gives the
quota unit back unless a scan came of it, whatever refused the upload."""

from __future__ import annotations

import pytest
from django.urls import reverse

from scans.intake import upload_attempt
from scans.ratelimit import upload_quota_used
from scans.services import scan_create
from scans.tests.uploads import image_bytes, upload
from scans.uploads import UploadRejected

pytestmark = pytest.mark.django_db


def test_an_attempt_keeps_its_quota_unit_only_when_it_accepts_a_scan(alice, tiny_models, redis_conn):
    with pytest.raises(UploadRejected), upload_attempt(owner=alice):
        scan_create(owner=alice, uploaded_file=upload(b"just text", "notes.txt"))
    with pytest.raises(RuntimeError), upload_attempt(owner=alice):
        raise RuntimeError("the request broke off")
    assert upload_quota_used(user=alice) == 0

    with upload_attempt(owner=alice) as attempt:
        attempt.accept(scan_create(owner=alice, uploaded_file=upload(image_bytes("PNG"), "a.png")))

    assert upload_quota_used(user=alice) == 1


def test_an_attempt_refuses_a_request_too_large_to_read_before_counting_it(alice, redis_conn, settings):
    declared = max(settings.UNMASK_MAX_IMAGE_BYTES, settings.UNMASK_MAX_VIDEO_BYTES) * 2

    with pytest.raises(UploadRejected) as refused, upload_attempt(owner=alice, content_length=declared):
        pytest.fail("the block must not run")

    assert refused.value.status_code == 413
    assert upload_quota_used(user=alice) == 0


def test_the_dashboard_and_batches_give_the_quota_back_for_refused_files(alice, tiny_models, client, redis_conn):
    client.force_login(alice)

    assert client.post(reverse("scans:dashboard"), {}).status_code == 400
    assert client.post(reverse("scans:dashboard"), {"file": upload(b"just text", "a.jpg")}).status_code == 400
    batch = client.post(
        reverse("scans:batch-new"), {"files": [upload(b"text", "a.jpg"), upload(image_bytes(), "b.jpg")]}
    )

    assert batch.status_code == 302
    assert upload_quota_used(user=alice) == 1
