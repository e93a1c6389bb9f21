"""What goes over the wire to a receiver: the signed payload, and a POST that reaches only addresses the SSRF
policy allows (`scans.destinations`), on every redirect too.

Signing: `X-Unmask-Signature: sha256=<hex>` is HMAC-SHA256 with the endpoint's secret over
`"<X-Unmask-Timestamp>." + body`; the timestamp (Unix seconds) is signed too so a receiver can refuse replays.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import http.client
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from scans.destinations import (
    Destination,
    DestinationRefused,
    connect_to_checked_address,
    destination_resolve,
    redirect_target,
)
from scans.reviews import review_data, scan_review_current

if TYPE_CHECKING:
    from scans.models import Scan

EVENT_SCAN_FINISHED = "scan.finished"
# A reviewer label was recorded on the scan: the same payload, its `scan.review` the new label.
EVENT_SCAN_REVIEWED = "scan.reviewed"
EVENTS = (EVENT_SCAN_FINISHED, EVENT_SCAN_REVIEWED)
SIGNATURE_HEADER = "X-Unmask-Signature"
TIMESTAMP_HEADER = "X-Unmask-Timestamp"
USER_AGENT = "Unmask-Webhooks/1"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 3


def webhook_payload(*, scan: Scan, event: str = EVENT_SCAN_FINISHED) -> dict[str, Any]:
    """What a receiver gets: the event, and the scan as the API shows it (its current reviewer label and stored result
    included)."""
    return {
        "event": event,
        "sent_at": timezone.now().isoformat(),
        "scan": {
            "id": str(scan.pk),
            "path": reverse("api:scan-detail", args=[scan.pk]),
            "kind": scan.kind,
            "status": scan.status,
            "verdict": scan.verdict or None,
            "fake_probability": scan.fake_probability,
            "original_filename": scan.original_filename,
            "sha256": scan.sha256,
            "created_at": scan.created_at.isoformat(),
            "finished_at": scan.finished_at.isoformat() if scan.finished_at else None,
            "error": scan.error_message,
            "source_url": scan.source_url or None,
            "review": review_data(scan_review_current(scan=scan)),
            "result": scan.result,
        },
    }


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Unmask-Signature` value: `sha256=` + hex HMAC-SHA256 of `<timestamp>.<body>` with the secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_signature_is_valid(*, secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver checks (constant-time); documented here so receivers in Python can copy it."""
    return hmac.compare_digest(webhook_signature(secret=secret, timestamp=timestamp, body=body), signature)


def post(url: str, *, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    """POST to `url` and return (status code of the last answer, error); the status is None when no answer came.

    Every hop (the URL, then up to MAX_REDIRECTS redirects, which get the same signed POST) is checked against
    the address policy after its host name is resolved, and connects only to the addresses that were checked.
    The error is "" for a 2xx answer; it never holds what a receiver wrote in its body, which is not even read.
    All hops together get twice UNMASK_WEBHOOK_TIMEOUT, each connect and read at most UNMASK_WEBHOOK_TIMEOUT.
    """
    allow_private = settings.UNMASK_WEBHOOK_ALLOW_PRIVATE
    timeout = settings.UNMASK_WEBHOOK_TIMEOUT
    deadline = time.monotonic() + 2 * timeout
    hop_url, status, redirected = url, None, ""
    for _hop in range(MAX_REDIRECTS + 1):
        then = f"{redirected}, then " if redirected else ""
        try:
            destination = destination_resolve(hop_url, allow_private=allow_private)
        except DestinationRefused as exc:
            return status, f"{redirected}, not followed: {exc.message}" if redirected else exc.message
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return status, f"{then}no answer within {2 * timeout:g} s"
        try:
            status, location = _post_once(destination, body=body, headers=headers, timeout=min(timeout, remaining))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return status, f"{then}no answer: {_no_answer_reason(exc)}"
        if status not in REDIRECT_STATUSES or not location:
            return status, "" if 200 <= status < 300 else f"{then}HTTP {status}"
        try:
            hop_url = redirect_target(from_url=hop_url, location=location)
        except DestinationRefused as exc:
            return status, f"redirected (HTTP {status}), not followed: {exc.message}"
        redirected = f"redirected (HTTP {status}) to {urllib.parse.urlsplit(hop_url).hostname or 'no host'}"
    return status, f"{redirected}: more than {MAX_REDIRECTS} redirects, not followed"


def _no_answer_reason(exc: OSError | http.client.HTTPException | ValueError) -> str:
    if isinstance(exc, http.client.InvalidURL | ValueError):
        return f"the request could not be sent ({type(exc).__name__})"
    # A malformed status line would be quoted whole in the exception: the log keeps its kind, not its text.
    if isinstance(exc, http.client.HTTPException) and not isinstance(exc, http.client.RemoteDisconnected):
        return f"the answer is not valid HTTP ({type(exc).__name__})"
    return str(exc)


def _post_once(destination: Destination, *, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    """One POST to a checked destination: (status, Location header or ""). The answer's body is never read."""
    connection_class = http.client.HTTPSConnection if destination.scheme == "https" else http.client.HTTPConnection
    # HTTPS verifies the certificate against the URL's host name (the default context), as any client would.
    connection = connection_class(destination.host, destination.port, timeout=timeout)
    # http.client opens its socket through this hook, with the URL's host; it is replaced so that the socket goes
    # to the addresses just checked, never to a second DNS answer (rebinding), while the Host header and the TLS
    # server name stay the URL's.
    connection._create_connection = functools.partial(connect_to_checked_address, destination)
    try:
        connection.request("POST", destination.target, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Location") or ""
    finally:
        connection.close()
