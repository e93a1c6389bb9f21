"""What goes over the wire to a receiver: the signed payload, and a POST that follows no redirect and calls no
private address (SSRF).

Signing: `X-Unmask-Signature: sha256=<hex>` is HMAC-SHA256 with the endpoint's secret over
`"<X-Unmask-Timestamp>." + body`; the timestamp (Unix seconds) is signed too so a receiver can refuse replays.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

if TYPE_CHECKING:
    from scans.models import Scan

EVENT_SCAN_FINISHED = "scan.finished"
SIGNATURE_HEADER = "X-Unmask-Signature"
TIMESTAMP_HEADER = "X-Unmask-Timestamp"
USER_AGENT = "Unmask-Webhooks/1"
# Only the start of a receiver's error answer is kept in the log.
_ERROR_EXCERPT_CHARS = 300


def webhook_payload(*, scan: Scan) -> dict[str, Any]:
    """What a receiver gets: the event, and the scan as the API shows it (its stored result included)."""
    return {
        "event": EVENT_SCAN_FINISHED,
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


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could lead a delivery to an address the URL check never saw, so none is followed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post(url: str, *, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    """POST and return (status code, error text); the status is None when no answer came back."""
    refusal = destination_refusal(url)
    if refusal:
        return None, refusal
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (http/https only)
    try:
        with _opener.open(request, timeout=settings.UNMASK_WEBHOOK_TIMEOUT) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        excerpt = exc.read(_ERROR_EXCERPT_CHARS).decode("utf-8", "replace").strip()
        return exc.code, f"HTTP {exc.code}" + (f": {excerpt}" if excerpt else "")
    except (urllib.error.URLError, OSError) as exc:
        return None, f"no answer: {getattr(exc, 'reason', exc)}"


def destination_refusal(url: str) -> str:
    """Why the URL may not be called (wrong scheme, private address), or "" when it may."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return "only http:// and https:// URLs are called"
    if settings.UNMASK_WEBHOOK_ALLOW_PRIVATE:
        return ""
    try:
        addresses = {
            info[4][0]
            for info in socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        }
    except OSError as exc:
        return f"the host name does not resolve: {exc}"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not ip.is_global or ip.is_multicast:
            return f"{parts.hostname} resolves to a private or reserved address ({ip}), which webhooks may not call"
    return ""
