"""Slow webhook receivers cannot stall scans: deliveries have their own queue and worker pool, a short timeout, and
at most UNMASK_WEBHOOK_CONCURRENCY_PER_USER of one user's run at once.

Real processes: a `scan_worker` and a `webhook_worker` pool against the committed test database and Redis, and a
loopback server that accepts every connection and never answers.
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Iterator

import pytest
from rq.queue import Queue
from rq.worker import Worker

from scans.models import Scan
from scans.queues import scan_queue
from scans.selectors import platform_health
from scans.services import scan_create
from scans.tests.processes import MANAGE, ProcessStarter, wait_for
from scans.tests.uploads import gradient_png, upload
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_endpoint_create
from webhooks.tests.test_webhooks import Receiver

HANGING_ENDPOINTS = 10
PER_USER_CONCURRENCY = 2
WEBHOOK_PROCESSES = 4
# The bound on how much another user's hanging receivers may delay a scan.
MAX_SCAN_DELAY_S = 1.0


class NeverAnswers:
    """A TCP server on loopback that accepts every connection, reads what it is sent and never answers.

    Counts the connections open at the same time, so a test can see how many deliveries were in flight at once.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.listener.setblocking(False)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = 0
        self.most_open_at_once = 0
        self._open: set[socket.socket] = set()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            for key, _events in self._selector.select(timeout=0.1):
                if key.fileobj is self.listener:
                    connection, _address = self.listener.accept()
                    self._selector.register(connection, selectors.EVENT_READ)
                    self._open.add(connection)
                    self.accepted += 1
                    self.most_open_at_once = max(self.most_open_at_once, len(self._open))
                elif not key.fileobj.recv(65536):
                    # The client gave up (its timeout): the connection is no longer in flight.
                    self._selector.unregister(key.fileobj)
                    self._open.discard(key.fileobj)
                    key.fileobj.close()

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        for connection in self._open:
            connection.close()
        self.listener.close()


@pytest.fixture
def never_answers() -> Iterator[NeverAnswers]:
    server = NeverAnswers()
    yield server
    server.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _scan_seconds(owner) -> float:
    """Upload a small photo for `owner` and wait for its verdict; the seconds from its row's creation to its end."""
    scan = scan_create(owner=owner, uploaded_file=upload(gradient_png(), "sky.png"))
    wait_for(
        lambda: Scan.objects.filter(pk=scan.pk, status=Scan.Status.DONE).exists(),
        timeout_s=60,
        what=f"{owner}'s scan to finish",
    )
    scan.refresh_from_db()
    return (scan.finished_at - scan.created_at).total_seconds()


@pytest.mark.django_db(transaction=True)
def test_ten_never_answering_endpoints_do_not_delay_another_users_scan(
    alice, bob, tiny_models, redis_conn, start_process: ProcessStarter, never_answers, receiver, settings
):
    # The receivers of this test run on loopback (the default refuses them), here and in the workers below.
    settings.UNMASK_WEBHOOK_ALLOW_PRIVATE = True
    for number in range(HANGING_ENDPOINTS):
        webhook_endpoint_create(owner=alice, url=f"{never_answers.url}/hook/{number}")
    webhook_endpoint_create(owner=bob, url=receiver.url)
    environment = {
        "UNMASK_WEBHOOK_ALLOW_PRIVATE": "1",
        "UNMASK_WEBHOOK_TIMEOUT": "3",
        "UNMASK_WEBHOOK_RETRY_INTERVALS": "60",
        "UNMASK_WEBHOOK_CONCURRENCY_PER_USER": str(PER_USER_CONCURRENCY),
    }
    start_process("scan-worker", [*MANAGE, "scan_worker"], **environment)
    start_process("webhook-worker", [*MANAGE, "webhook_worker", "--processes", str(WEBHOOK_PROCESSES)], **environment)
    webhook_queue = Queue("webhooks", connection=redis_conn)
    wait_for(
        lambda: platform_health()["workers"] == 1 and Worker.count(queue=webhook_queue) == WEBHOOK_PROCESSES,
        timeout_s=180,
        what="the scan worker and the webhook pool to start",
        logs=start_process.logs,
    )
    baseline_s = _scan_seconds(bob)

    _scan_seconds(alice)
    wait_for(
        lambda: never_answers.accepted >= 1,
        timeout_s=10,
        what="alice's deliveries to hang",
        logs=start_process.logs,
    )
    delayed_s = _scan_seconds(bob)

    assert delayed_s < baseline_s + MAX_SCAN_DELAY_S, (baseline_s, delayed_s)
    # The scan worker never took a delivery; bob's own webhook got through beside alice's hanging ones...
    assert scan_queue().name not in {job.origin for job in webhook_queue.jobs}
    wait_for(lambda: len(receiver.requests) == 2, timeout_s=10, what="bob's webhooks to be delivered")
    # ...because at most two of alice's deliveries were ever in flight at once.
    assert never_answers.most_open_at_once <= PER_USER_CONCURRENCY
    wait_for(
        lambda: WebhookDelivery.objects.filter(endpoint__owner=alice, succeeded=False).count() >= PER_USER_CONCURRENCY,
        timeout_s=15,
        what="the hanging deliveries to time out and be logged",
    )
    failed = WebhookDelivery.objects.filter(endpoint__owner=alice, succeeded=False).first()
    assert "timed out" in failed.error
    assert failed.duration_ms < 5000
