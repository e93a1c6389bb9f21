"""Webhooks: signed deliveries of finished scans to a receiver on loopback, retries, the log, API and page."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import django_rq
import pytest
from django.urls import reverse
from django.utils import timezone
from rq.job import Job
from rq.rate_limit import RateLimitRegistry
from rq.registry import ScheduledJobRegistry

from scans.models import Scan
from scans.services import scan_create, scan_delete, scan_mark_failed
from scans.tests.uploads import gradient_png, make_scan_row, upload
from webhooks.delivery import webhook_signature, webhook_signature_is_valid
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import (
    WebhookRejected,
    webhook_endpoint_create,
    webhook_endpoint_record_outcome,
    webhooks_schedule_for_scan,
)

pytestmark = pytest.mark.django_db

# What the receiver writes in the body of an error answer (the delivery log must never show it).
RECEIVER_ERROR_ANSWER = b"receiver is down for maintenance; internal token abc123"


class Receiver:
    """An HTTP server on loopback that records every POST and answers with the next queued answer: a status code,
    or (status code, headers) such as a redirect's Location."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: list[int | tuple[int, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                answer = receiver.answers.pop(0) if receiver.answers else 204
                code, headers = answer if isinstance(answer, tuple) else (answer, {})
                self.send_response(code)
                for name, value in headers.items():
                    self.send_header(name, value)
                message = RECEIVER_ERROR_ANSWER if code >= 400 else b""
                self.send_header("Content-Length", str(len(message)))
                self.end_headers()
                self.wfile.write(message)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _webhook_settings(settings) -> None:
    settings.UNMASK_WEBHOOK_ALLOW_PRIVATE = True
    settings.UNMASK_WEBHOOK_RETRY_INTERVALS = [0, 0]
    settings.UNMASK_WEBHOOK_TIMEOUT = 5.0


def test_a_finished_scan_is_posted_signed_to_the_owners_active_endpoints(
    alice, bob, tiny_models, run_worker, run_webhook_worker, receiver
):
    endpoint = webhook_endpoint_create(owner=alice, url=receiver.url)
    deactivated = webhook_endpoint_create(owner=alice, url=receiver.url + "?deactivated")
    WebhookEndpoint.objects.filter(pk=deactivated.pk).update(is_active=False)
    webhook_endpoint_create(owner=bob, url=receiver.url + "?bob")
    scan = scan_create(owner=alice, uploaded_file=upload(gradient_png(), "gradient.png"))

    run_worker()  # the analysis; its commit schedules the webhooks
    run_webhook_worker()  # the deliveries

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request["path"] == "/hook"
    timestamp = request["headers"]["X-Unmask-Timestamp"]
    expected = hmac.new(endpoint.secret.encode(), timestamp.encode() + b"." + request["body"], hashlib.sha256)
    assert request["headers"]["X-Unmask-Signature"] == f"sha256={expected.hexdigest()}"
    assert request["headers"]["X-Unmask-Event"] == "scan.finished"
    payload = json.loads(request["body"])
    assert payload["scan"]["id"] == str(scan.pk)
    assert payload["scan"]["status"] == "done"
    assert payload["scan"]["verdict"] == "no_face"
    assert payload["scan"]["result"]["verdict"] == "no_face"
    delivery = WebhookDelivery.objects.get()
    assert (delivery.endpoint, delivery.scan, delivery.attempt) == (endpoint, Scan.objects.get(), 1)
    assert delivery.succeeded and delivery.status_code == 204 and delivery.error == ""


def test_a_failed_delivery_is_retried_and_every_attempt_is_logged(alice, run_webhook_worker, receiver):
    endpoint = webhook_endpoint_create(owner=alice, url=receiver.url)
    receiver.answers = [500]
    scan = make_scan_row(alice)
    assert scan_mark_failed(scan_id=scan.pk, error_message="The file could not be analysed.")

    run_webhook_worker()

    assert len(receiver.requests) == 2
    attempts = list(WebhookDelivery.objects.filter(endpoint=endpoint).order_by("attempt"))
    assert [(row.attempt, row.succeeded, row.status_code) for row in attempts] == [(1, False, 500), (2, True, 204)]
    assert attempts[0].error == "HTTP 500"
    assert json.loads(receiver.requests[1]["body"])["scan"]["error"] == "The file could not be analysed."


def test_a_retry_waits_for_the_next_back_off_interval(alice, run_webhook_worker, receiver, redis_conn, settings):
    settings.UNMASK_WEBHOOK_RETRY_INTERVALS = [120, 600]
    webhook_endpoint_create(owner=alice, url=receiver.url)
    receiver.answers = [503]
    scan = make_scan_row(alice)
    scan_mark_failed(scan_id=scan.pk, error_message="stopped")
    before = timezone.now()

    run_webhook_worker()

    assert len(receiver.requests) == 1
    registry = ScheduledJobRegistry(queue=django_rq.get_queue(settings.UNMASK_WEBHOOK_QUEUE, connection=redis_conn))
    (job_id,) = registry.get_job_ids()
    retry_at = registry.get_scheduled_time(job_id)
    assert before + timedelta(seconds=110) < retry_at < before + timedelta(seconds=130)


def test_a_loopback_endpoint_registered_while_allowed_gets_nothing_once_private_addresses_are_refused(
    alice, run_webhook_worker, receiver, settings
):
    webhook_endpoint_create(owner=alice, url=receiver.url)
    settings.UNMASK_WEBHOOK_ALLOW_PRIVATE = False
    settings.UNMASK_WEBHOOK_RETRY_INTERVALS = []
    scan_mark_failed(scan_id=make_scan_row(alice).pk, error_message="stopped")

    worker = run_webhook_worker()

    assert receiver.requests == []
    assert worker.failed_job_count == 1
    delivery = WebhookDelivery.objects.get()
    assert not delivery.succeeded and delivery.status_code is None
    assert delivery.error == "127.0.0.1 is a loopback address, which webhooks may not call (only public addresses are)."


def test_the_log_outlives_a_deleted_scan(alice, run_webhook_worker, receiver):
    webhook_endpoint_create(owner=alice, url=receiver.url)
    scan = make_scan_row(alice)
    scan_mark_failed(scan_id=scan.pk, error_message="stopped")
    run_webhook_worker()

    scan_delete(scan=scan)

    delivery = WebhookDelivery.objects.get()
    assert delivery.scan is None and delivery.scan_reference == scan.pk


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "example.com/hook",
        "http://u:p@example.com/",
    ],
)
def test_only_http_and_https_urls_are_accepted(alice, url):
    with pytest.raises(WebhookRejected):
        webhook_endpoint_create(owner=alice, url=url)


def test_a_url_is_registered_once_and_the_number_of_endpoints_is_bounded(alice, settings):
    settings.UNMASK_WEBHOOK_MAX_ENDPOINTS = 2
    first = webhook_endpoint_create(owner=alice, url="https://example.com/a")
    with pytest.raises(WebhookRejected, match="already registered"):
        webhook_endpoint_create(owner=alice, url="https://example.com/a")
    second = webhook_endpoint_create(owner=alice, url="https://example.com/b")
    with pytest.raises(WebhookRejected, match="at most 2"):
        webhook_endpoint_create(owner=alice, url="https://example.com/c")
    assert first.secret != second.secret and len(first.secret) == 64


def test_the_signature_check_refuses_a_changed_body():
    signature = webhook_signature(secret="s3cret", timestamp="1700000000", body=b'{"a":1}')

    assert webhook_signature_is_valid(secret="s3cret", timestamp="1700000000", body=b'{"a":1}', signature=signature)
    assert not webhook_signature_is_valid(secret="s3cret", timestamp="1700000000", body=b'{"a":2}', signature=signature)
    assert not webhook_signature_is_valid(secret="other", timestamp="1700000000", body=b'{"a":1}', signature=signature)


# --- API -------------------------------------------------------------------------------------------


def test_the_api_registers_lists_and_removes_the_callers_endpoints(alice, bob, api_client_for):
    client = api_client_for(alice)

    created = client.post(reverse("webhooks_api:list"), {"url": "https://example.com/hook"}, format="json")

    assert created.status_code == 201
    assert len(created.data["secret"]) == 64
    assert [row["url"] for row in client.get(reverse("webhooks_api:list")).data] == ["https://example.com/hook"]
    detail_url = reverse("webhooks_api:detail", args=[created.data["id"]])
    assert api_client_for(bob).get(detail_url).status_code == 404
    assert api_client_for(bob).delete(detail_url).status_code == 404
    assert api_client_for(bob).get(reverse("webhooks_api:list")).data == []
    assert api_client_for(None).get(reverse("webhooks_api:list")).status_code == 401
    assert client.delete(detail_url).status_code == 204
    assert not WebhookEndpoint.objects.exists()


def test_the_api_refuses_a_non_http_url(alice, api_client_for):
    response = api_client_for(alice).post(reverse("webhooks_api:list"), {"url": "ftp://example.com/"}, format="json")

    assert response.status_code == 400
    assert "http" in response.data["url"][0]


def test_the_api_shows_only_the_callers_delivery_log(alice, bob, api_client_for, run_webhook_worker, receiver):
    alice_endpoint = webhook_endpoint_create(owner=alice, url=receiver.url)
    webhook_endpoint_create(owner=bob, url=receiver.url)
    scan_mark_failed(scan_id=make_scan_row(alice).pk, error_message="stopped")
    scan_mark_failed(scan_id=make_scan_row(bob).pk, error_message="stopped")
    run_webhook_worker()

    alice_log = api_client_for(alice).get(reverse("webhooks_api:deliveries")).data
    filtered = api_client_for(alice).get(reverse("webhooks_api:deliveries"), {"endpoint": alice_endpoint.pk})
    foreign = api_client_for(bob).get(reverse("webhooks_api:deliveries"), {"endpoint": alice_endpoint.pk})

    assert alice_log["count"] == 1
    assert alice_log["results"][0]["endpoint_id"] == alice_endpoint.pk
    assert alice_log["results"][0]["succeeded"] is True
    assert filtered.data["count"] == 1
    assert foreign.status_code == 404


# --- Dashboard page ----------------------------------------------------------------------------------


def test_the_page_adds_shows_and_removes_endpoints(alice, bob, client):
    client.force_login(alice)
    page_url = reverse("webhooks:endpoints")

    added = client.post(page_url, {"add": "1", "url": "https://example.com/hook"})

    assert added.status_code == 302
    endpoint = WebhookEndpoint.objects.get(owner=alice)
    page = client.get(page_url)
    assert endpoint.secret in page.content.decode()
    client.force_login(bob)
    client.post(page_url, {"remove": str(endpoint.pk)})
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
    assert endpoint.secret not in client.get(page_url).content.decode()
    client.force_login(alice)
    client.post(page_url, {"remove": str(endpoint.pk)})
    assert not WebhookEndpoint.objects.exists()


def test_the_page_explains_a_refused_url(alice, client):
    client.force_login(alice)

    response = client.post(reverse("webhooks:endpoints"), {"add": "1", "url": "ftp://example.com/"})

    assert response.status_code == 400
    assert "http:// or https://" in response.content.decode()


def test_the_page_needs_a_login(client):
    response = client.get(reverse("webhooks:endpoints"))

    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


# --- Circuit breaker and per-user concurrency ----------------------------------------------------------


def test_an_endpoint_that_keeps_failing_is_paused_logged_and_sent_nothing_more(
    alice, run_webhook_worker, receiver, settings, caplog
):
    settings.UNMASK_WEBHOOK_PAUSE_AFTER_FAILURES = 3
    settings.UNMASK_WEBHOOK_RETRY_INTERVALS = [0, 0, 0]
    endpoint = webhook_endpoint_create(owner=alice, url=receiver.url)
    receiver.answers = [500, 500, 500, 500]
    scan_mark_failed(scan_id=make_scan_row(alice).pk, error_message="stopped")

    run_webhook_worker()

    # The third failure in a row paused it, so the fourth attempt (a retry) was skipped.
    assert len(receiver.requests) == 3
    endpoint.refresh_from_db()
    assert endpoint.is_paused and endpoint.consecutive_failures == 3
    assert any("paused after 3 failed deliveries" in record.getMessage() for record in caplog.records)
    scan_mark_failed(scan_id=make_scan_row(alice).pk, error_message="stopped again")
    assert webhooks_schedule_for_scan(scan_id=Scan.objects.latest("created_at").pk) == 0
    run_webhook_worker()
    assert len(receiver.requests) == 3


def test_a_success_sets_the_count_of_failures_back_to_zero(alice, run_webhook_worker, receiver, settings):
    settings.UNMASK_WEBHOOK_PAUSE_AFTER_FAILURES = 3
    endpoint = webhook_endpoint_create(owner=alice, url=receiver.url)
    receiver.answers = [500, 500, 204]
    scan_mark_failed(scan_id=make_scan_row(alice).pk, error_message="stopped")

    run_webhook_worker()

    endpoint.refresh_from_db()
    assert (endpoint.is_paused, endpoint.consecutive_failures) == (False, 0)


def test_a_delivery_waiting_when_its_endpoint_was_paused_is_skipped(
    alice, run_webhook_worker, receiver, settings, django_capture_on_commit_callbacks
):
    settings.UNMASK_WEBHOOK_PAUSE_AFTER_FAILURES = 1
    endpoint = webhook_endpoint_create(owner=alice, url=receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        scan_mark_failed(scan_id=make_scan_row(alice).pk, error_message="stopped")
    webhook_endpoint_record_outcome(endpoint=endpoint, succeeded=False)

    worker = run_webhook_worker()

    assert receiver.requests == []
    assert (worker.successful_job_count, worker.failed_job_count) == (1, 0)


def _pause(endpoint: WebhookEndpoint, settings) -> None:
    settings.UNMASK_WEBHOOK_PAUSE_AFTER_FAILURES = 2
    webhook_endpoint_record_outcome(endpoint=endpoint, succeeded=False)
    assert webhook_endpoint_record_outcome(endpoint=endpoint, succeeded=False)


def test_the_api_shows_a_paused_endpoint_and_only_its_owner_resumes_it(alice, bob, api_client_for, settings):
    endpoint = webhook_endpoint_create(owner=alice, url="https://example.com/hook")
    _pause(endpoint, settings)
    detail_url = reverse("webhooks_api:detail", args=[endpoint.pk])
    resume_url = reverse("webhooks_api:resume", args=[endpoint.pk])

    shown = api_client_for(alice).get(detail_url).data
    foreign = api_client_for(bob).post(resume_url)
    anonymous = api_client_for(None).post(resume_url)
    resumed = api_client_for(alice).post(resume_url)

    assert (shown["paused"], shown["consecutive_failures"]) == (True, 2)
    assert shown["paused_at"] is not None
    assert (foreign.status_code, anonymous.status_code) == (404, 401)
    assert resumed.status_code == 200
    assert (resumed.data["paused"], resumed.data["paused_at"], resumed.data["consecutive_failures"]) == (False, None, 0)


def test_the_page_shows_a_paused_endpoint_with_a_way_to_resume_it(alice, bob, client, settings):
    endpoint = webhook_endpoint_create(owner=alice, url="https://example.com/hook")
    _pause(endpoint, settings)
    page_url = reverse("webhooks:endpoints")
    client.force_login(bob)
    client.post(page_url, {"resume": str(endpoint.pk)})
    endpoint.refresh_from_db()
    assert endpoint.is_paused
    client.force_login(alice)

    page = client.get(page_url).content.decode()
    resumed = client.post(page_url, {"resume": str(endpoint.pk)}, follow=True).content.decode()

    assert "paused" in page and "after 2 failed deliveries in a row" in page
    assert f'name="resume" value="{endpoint.pk}"' in page
    assert "Resumed the webhook" in resumed
    endpoint.refresh_from_db()
    assert not endpoint.is_paused


def test_at_most_the_per_user_limit_of_one_users_deliveries_wait_on_the_queue_at_once(alice, bob, redis_conn, settings):
    settings.UNMASK_WEBHOOK_CONCURRENCY_PER_USER = 2
    for number in range(5):
        webhook_endpoint_create(owner=alice, url=f"https://example.com/alice/{number}")
    webhook_endpoint_create(owner=bob, url="https://example.com/bob")
    queue = django_rq.get_queue(settings.UNMASK_WEBHOOK_QUEUE, connection=redis_conn)

    assert webhooks_schedule_for_scan(scan_id=make_scan_row(alice).pk) == 5
    assert webhooks_schedule_for_scan(scan_id=make_scan_row(bob).pk) == 1

    # Two of alice's five are on the queue, behind them bob's; RQ holds her other three until one finishes.
    queued_owners = [
        Scan.objects.get(pk=Job.fetch(job_id, connection=redis_conn).args[0]).owner for job_id in queue.job_ids
    ]
    assert queued_owners == [alice, alice, bob]
    held_back = RateLimitRegistry(key=f"unmask-webhooks-user-{alice.pk}", connection=redis_conn)
    assert held_back.get_rate_limited_job_count() == 3
