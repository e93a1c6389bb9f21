"""SSRF: which destinations a webhook may call, at registration and at every delivery hop after DNS.

Traffic goes to loopback only. Private, link-local and public destinations are named through a resolver the
test controls (`socket.getaddrinfo` patched), and every socket of the test may connect to loopback only: any
other connection attempt is recorded and refused before a packet leaves (`loopback_only`).
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from scans.destinations import DestinationRefused, redirect_target
from scans.services import scan_mark_failed
from scans.tests.uploads import make_scan_row
from webhooks.delivery import webhook_signature_is_valid
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import WebhookRejected, webhook_endpoint_create
from webhooks.tests.test_webhooks import RECEIVER_ERROR_ANSWER, Receiver

pytestmark = pytest.mark.django_db

# A global (public) address, for names the test resolves to the outside world; never connected to.
PUBLIC_ADDRESS = "93.184.215.14"
NOT_ALLOWED = "which webhooks may not call"
NEVER_ALLOWED = "which webhooks never call"


class FakeDns:
    """`socket.getaddrinfo` for the test's own host names; IP literals and every other name resolve for real.

    Each name has a list of answers: every lookup takes the next one, and the last is repeated.
    """

    def __init__(self, real_getaddrinfo: Callable[..., list]) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []
        self._real_getaddrinfo = real_getaddrinfo

    def set(self, host: str, *answers: list[str]) -> None:
        self.answers[host] = list(answers)

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return self._real_getaddrinfo(host, port, *args, **kwargs)
        self.lookups.append(name)
        queued = self.answers[name]
        addresses = queued.pop(0) if len(queued) > 1 else queued[0]
        port_number = int(port or 0)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port_number, 0, 0))
            if ":" in address
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port_number))
            for address in addresses
        ]


class LoopbackOnly:
    """What the test's sockets tried to reach outside loopback: each attempt was refused without connecting."""

    def __init__(self) -> None:
        self.refused: list[tuple[str, int]] = []


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    dns = FakeDns(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    return dns


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> LoopbackOnly:
    network = LoopbackOnly()
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = str(address[0]).split("%", 1)[0]
            try:
                is_loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                is_loopback = host == "localhost"
            if not is_loopback:
                network.refused.append((host, address[1]))
                raise ConnectionRefusedError(errno.ECONNREFUSED, "refused by the test: not a loopback address")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return network


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def second_receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _guarded(settings, loopback_only: LoopbackOnly) -> None:
    """The production default (private addresses refused), one attempt per delivery, loopback-only sockets."""
    settings.UNMASK_WEBHOOK_ALLOW_PRIVATE = False
    settings.UNMASK_WEBHOOK_RETRY_INTERVALS = []
    settings.UNMASK_WEBHOOK_TIMEOUT = 5.0


def _register(client, url: str):
    return client.post(reverse("webhooks_api:list"), {"url": url}, format="json")


def _deliver_one_scan(owner, run_webhook_worker) -> WebhookDelivery:
    scan_mark_failed(scan_id=make_scan_row(owner).pk, error_message="stopped")
    run_webhook_worker()
    return WebhookDelivery.objects.get()


# --- Registration ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://0.0.0.0:8000/admin/", "unspecified"),
        ("http://[::]/hook", "unspecified"),
        ("http://10.1.2.3/hook", "private"),
        ("http://172.16.5.4/hook", "private"),
        ("https://192.168.0.10/hook", "private"),
        ("http://[fc00::1]/hook", "private"),
        ("http://100.64.0.1/hook", "shared (carrier-grade NAT)"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://240.0.0.1/hook", "reserved"),
        ("http://192.0.2.1/hook", "private"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://[2001:db8::1]/hook", "private"),
    ],
)
def test_the_api_refuses_an_address_that_is_not_public_with_400(alice, api_client_for, url, kind):
    response = _register(api_client_for(alice), url)

    assert response.status_code == 400
    message = response.data["url"][0]
    assert f"a {kind} address, {NOT_ALLOWED}" in message
    assert not WebhookEndpoint.objects.exists()


def test_a_name_that_resolves_to_a_private_address_is_refused_at_registration(alice, api_client_for, fake_dns):
    fake_dns.set("hooks.internal.test", ["10.20.30.40"])
    fake_dns.set("localhost.test", ["127.0.0.1", "::1"])
    fake_dns.set("mixed.test", [PUBLIC_ADDRESS, "192.168.1.1"])

    internal = _register(api_client_for(alice), "https://hooks.internal.test/hook")
    loopback = _register(api_client_for(alice), "http://localhost.test:8000/admin/")
    mixed = _register(api_client_for(alice), "https://mixed.test/hook")

    assert internal.status_code == 400
    assert internal.data["url"] == [
        f"hooks.internal.test resolves to 10.20.30.40: a private address, {NOT_ALLOWED} (only public addresses are)."
    ]
    assert loopback.status_code == 400 and "resolves to 127.0.0.1: a loopback address" in loopback.data["url"][0]
    # One address that may not be called is enough to refuse a name.
    assert mixed.status_code == 400 and "resolves to 192.168.1.1: a private address" in mixed.data["url"][0]
    assert not WebhookEndpoint.objects.exists()


def test_a_name_that_resolves_to_a_public_address_is_registered(alice, api_client_for, fake_dns):
    fake_dns.set("hooks.example.test", [PUBLIC_ADDRESS, "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])

    response = _register(api_client_for(alice), "https://hooks.example.test/hook")

    assert response.status_code == 201
    assert fake_dns.lookups == ["hooks.example.test"]


def test_a_name_that_does_not_resolve_yet_is_registered_and_checked_again_at_delivery(alice):
    endpoint = webhook_endpoint_create(owner=alice, url="https://no-such-host.invalid/hook")

    assert endpoint.pk is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://metadata.test/computeMetadata/v1/",
    ],
)
def test_link_local_and_cloud_metadata_addresses_are_refused_even_when_private_ones_are_allowed(
    alice, api_client_for, settings, fake_dns, url
):
    settings.UNMASK_WEBHOOK_ALLOW_PRIVATE = True
    fake_dns.set("metadata.test", ["169.254.169.254"])

    response = _register(api_client_for(alice), url)

    assert response.status_code == 400
    assert NEVER_ALLOWED in response.data["url"][0]
    assert not WebhookEndpoint.objects.exists()


def test_loopback_is_registered_when_private_addresses_are_allowed(alice, api_client_for, settings):
    settings.UNMASK_WEBHOOK_ALLOW_PRIVATE = True

    assert _register(api_client_for(alice), "http://127.0.0.1:8000/hook").status_code == 201


@pytest.mark.parametrize(
    "url", ["http://example.com:99999/hook", "https://example.com:65536/", "http://example.com:0/"]
)
def test_a_url_with_an_invalid_port_is_refused_at_registration(alice, api_client_for, url):
    with pytest.raises(WebhookRejected, match="port must be a number from 1 to 65535"):
        webhook_endpoint_create(owner=alice, url=url)

    response = _register(api_client_for(alice), url)
    assert response.status_code == 400
    assert response.data["url"] == ["The port must be a number from 1 to 65535."]


def test_the_page_explains_why_a_private_address_is_refused(alice, client):
    client.force_login(alice)

    response = client.post(reverse("webhooks:endpoints"), {"add": "1", "url": "http://169.254.169.254/latest/"})

    assert response.status_code == 400
    assert "169.254.169.254 is a link-local address, which webhooks never call." in response.content.decode()


def test_private_addresses_are_refused_by_default_even_in_debug_mode():
    environment = {name: value for name, value in os.environ.items() if name != "UNMASK_WEBHOOK_ALLOW_PRIVATE"}
    environment["DJANGO_DEBUG"] = "1"
    script = "from django.conf import settings; print(settings.DEBUG, settings.UNMASK_WEBHOOK_ALLOW_PRIVATE)"

    completed = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=django_settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().splitlines()[-1] == "True False"


# --- Delivery: after DNS, pinned to the checked address ------------------------------------------------------------


def test_a_delivery_is_refused_when_the_name_resolves_to_a_private_address_by_then(
    alice, run_webhook_worker, fake_dns, loopback_only
):
    fake_dns.set("hooks.example.test", [PUBLIC_ADDRESS], ["10.0.0.7"])
    webhook_endpoint_create(owner=alice, url="https://hooks.example.test/hook")

    delivery = _deliver_one_scan(alice, run_webhook_worker)

    assert (delivery.succeeded, delivery.status_code) == (False, None)
    assert delivery.error.startswith("hooks.example.test resolves to 10.0.0.7: a private address")
    assert loopback_only.refused == []


def test_a_delivery_connects_to_the_address_it_checked_not_to_a_second_dns_answer(
    alice, run_webhook_worker, receiver, fake_dns, loopback_only
):
    """DNS rebinding: the name is public when checked and loopback a moment later, when a client would connect."""
    port = receiver.server.server_address[1]
    fake_dns.set("rebinding.test", [PUBLIC_ADDRESS], ["127.0.0.1"])
    WebhookEndpoint.objects.create(owner=alice, url=f"http://rebinding.test:{port}/hook")

    delivery = _deliver_one_scan(alice, run_webhook_worker)

    assert receiver.requests == []
    assert loopback_only.refused == [(PUBLIC_ADDRESS, port)]
    assert fake_dns.lookups == ["rebinding.test"]
    assert not delivery.succeeded and delivery.error.startswith("no answer:")


def test_a_stored_url_with_an_invalid_port_fails_its_delivery_with_the_reason(alice, run_webhook_worker):
    WebhookEndpoint.objects.create(owner=alice, url="http://example.com:99999/hook")

    delivery = _deliver_one_scan(alice, run_webhook_worker)

    assert (delivery.succeeded, delivery.status_code) == (False, None)
    assert delivery.error == "The port must be a number from 1 to 65535."


@pytest.mark.usefixtures("loopback_allowed")
def test_a_url_with_characters_outside_ascii_is_delivered_percent_encoded(alice, run_webhook_worker, receiver):
    webhook_endpoint_create(owner=alice, url=receiver.url + "/r\u00e9daction?desk=m\u00fcnchen&id=%41")

    delivery = _deliver_one_scan(alice, run_webhook_worker)

    assert delivery.succeeded
    assert receiver.requests[0]["path"] == "/hook/r%C3%A9daction?desk=m%C3%BCnchen&id=%41"


# --- Delivery: redirects -----------------------------------------------------------------------------------------


@pytest.fixture
def loopback_allowed(settings) -> None:
    """The receivers of these tests run on loopback, which a development setting allows."""
    settings.UNMASK_WEBHOOK_ALLOW_PRIVATE = True


@pytest.mark.usefixtures("loopback_allowed")
def test_a_redirect_is_followed_with_the_same_signed_post(alice, run_webhook_worker, receiver, second_receiver):
    endpoint = webhook_endpoint_create(owner=alice, url=receiver.url)
    receiver.answers = [(307, {"Location": second_receiver.url + "?moved=1"})]

    delivery = _deliver_one_scan(alice, run_webhook_worker)

    assert (delivery.succeeded, delivery.status_code, delivery.error) == (True, 204, "")
    assert len(receiver.requests) == 1 and len(second_receiver.requests) == 1
    moved = second_receiver.requests[0]
    assert moved["path"] == "/hook?moved=1" and moved["body"] == receiver.requests[0]["body"]
    assert webhook_signature_is_valid(
        secret=endpoint.secret,
        timestamp=moved["headers"]["X-Unmask-Timestamp"],
        body=moved["body"],
        signature=moved["headers"]["X-Unmask-Signature"],
    )


@pytest.mark.usefixtures("loopback_allowed")
def test_a_redirect_to_a_link_local_address_is_refused_after_dns_and_never_connected(
    alice, run_webhook_worker, receiver, fake_dns, loopback_only
):
    fake_dns.set("metadata.test", ["169.254.169.254"])
    webhook_endpoint_create(owner=alice, url=receiver.url)
    receiver.answers = [(302, {"Location": "http://metadata.test/latest/meta-data/iam/"})]

    delivery = _deliver_one_scan(alice, run_webhook_worker)

    assert (delivery.succeeded, delivery.status_code) == (False, 302)
    assert delivery.error == (
        "redirected (HTTP 302) to metadata.test, not followed: metadata.test resolves to 169.254.169.254: "
        f"a link-local address, {NEVER_ALLOWED}."
    )
    assert fake_dns.lookups == ["metadata.test"]
    assert loopback_only.refused == []


@pytest.mark.usefixtures("loopback_allowed")
def test_a_redirect_to_a_name_that_rebinds_is_connected_to_the_address_it_checked(
    alice, run_webhook_worker, receiver, second_receiver, fake_dns, loopback_only
):
    port = second_receiver.server.server_address[1]
    fake_dns.set("next-hop.test", ["127.0.0.1"], ["169.254.169.254"])
    webhook_endpoint_create(owner=alice, url=receiver.url)
    receiver.answers = [(308, {"Location": f"http://next-hop.test:{port}/hook"})]

    delivery = _deliver_one_scan(alice, run_webhook_worker)

    assert delivery.succeeded
    assert len(second_receiver.requests) == 1
    assert second_receiver.requests[0]["headers"]["Host"] == f"next-hop.test:{port}"
    assert fake_dns.lookups == ["next-hop.test"]
    assert loopback_only.refused == []


@pytest.mark.usefixtures("loopback_allowed")
def test_redirects_are_followed_at_most_three_times(alice, run_webhook_worker, receiver):
    webhook_endpoint_create(owner=alice, url=receiver.url)
    receiver.answers = [(302, {"Location": "/hook"})] * 5

    delivery = _deliver_one_scan(alice, run_webhook_worker)

    assert len(receiver.requests) == 4
    assert (delivery.succeeded, delivery.status_code) == (False, 302)
    assert delivery.error == "redirected (HTTP 302) to 127.0.0.1: more than 3 redirects, not followed"


def test_a_redirect_from_https_to_http_is_not_followed():
    assert redirect_target(from_url="https://a.example/hook", location="/other") == "https://a.example/other"
    assert redirect_target(from_url="http://a.example/hook", location="http://b.example/") == "http://b.example/"
    with pytest.raises(DestinationRefused, match="from https:// to another scheme"):
        redirect_target(from_url="https://a.example/hook", location="http://a.example/hook")


# --- The delivery log: status codes and timings, never the receiver's answer -----------------------------------


@pytest.mark.usefixtures("loopback_allowed")
def test_the_log_keeps_the_status_and_time_not_what_the_receiver_answered(
    alice, client, api_client_for, run_webhook_worker, receiver
):
    webhook_endpoint_create(owner=alice, url=receiver.url)
    receiver.answers = [500]

    delivery = _deliver_one_scan(alice, run_webhook_worker)

    assert (delivery.status_code, delivery.error) == (500, "HTTP 500")
    assert delivery.duration_ms is not None
    logged = json.dumps(api_client_for(alice).get(reverse("webhooks_api:deliveries")).data)
    client.force_login(alice)
    page = client.get(reverse("webhooks:endpoints")).content.decode()
    for shown in (logged, page, delivery.error):
        assert "internal token" not in shown and RECEIVER_ERROR_ANSWER.decode() not in shown


@pytest.mark.usefixtures("loopback_allowed")
def test_an_answer_that_is_not_http_is_logged_by_its_kind_not_its_text(alice, run_webhook_worker):
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_garbage() -> None:
        connection, _address = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"SECRET internal reply, not HTTP\r\n\r\n")

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    try:
        webhook_endpoint_create(owner=alice, url=f"http://127.0.0.1:{listener.getsockname()[1]}/hook")
        delivery = _deliver_one_scan(alice, run_webhook_worker)
    finally:
        thread.join(timeout=5)
        listener.close()

    assert delivery.status_code is None
    assert delivery.error == "no answer: the answer is not valid HTTP (BadStatusLine)"
