"""A small HTTP client for the Unmask API v1, built on urllib so the command-line client needs no install."""

from __future__ import annotations

import json
import mimetypes
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

USER_AGENT = "unmask-client/1"
ALLOWED_SCHEMES = frozenset({"http", "https"})
# Rate-limited uploads are retried after the server's Retry-After, but never longer than this per wait.
MAX_RETRY_AFTER_S = 60


class ApiError(Exception):
    """A request the server refused or could not be reached for.

    `status` is the HTTP status (None when the server could not be reached); `message` is the server's
    `detail` where it gave one, so it reads as the reason shown to the user.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    @property
    def is_auth_error(self) -> bool:
        return self.status in {401, 403}

    @property
    def is_upload_rejection(self) -> bool:
        """The server looked at the file and refused it (empty, not an image or video, too large)."""
        return self.status in {400, 413, 415}


class UnmaskApi:
    """The endpoints the client uses: upload, get, list and delete scans, with token authentication."""

    def __init__(self, base_url: str, token: str, *, request_timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.token = token
        self.request_timeout = request_timeout
        self._opener = http_only_opener()

    def scan_upload(self, path: Path, *, deadline: float | None = None) -> dict[str, Any]:
        """POST the file to /api/v1/scans/; returns the accepted scan. A 429 is waited out until `deadline`."""
        body, content_type = _multipart_body(path)
        return self._post_scan(body, content_type, deadline=deadline)

    def scan_link(self, source_url: str, *, deadline: float | None = None) -> dict[str, Any]:
        """POST a link to an image, a video or a page with one (`source_url`); the server downloads it."""
        body = json.dumps({"source_url": source_url}).encode()
        return self._post_scan(body, "application/json", deadline=deadline)

    def _post_scan(self, body: bytes, content_type: str, *, deadline: float | None) -> dict[str, Any]:
        while True:
            try:
                return self._request("POST", "api/v1/scans/", body=body, content_type=content_type)
            except _RateLimited as exc:
                wait = min(exc.retry_after, MAX_RETRY_AFTER_S)
                if deadline is not None and time.monotonic() + wait > deadline:
                    raise ApiError(exc.message, status=429) from None
                time.sleep(wait)

    def scan_get(self, scan_id_or_url: str) -> dict[str, Any]:
        """GET one scan by id or by the `url` the API returned for it."""
        return self._request("GET", self._scan_path(scan_id_or_url))

    def scan_delete(self, scan_id: str) -> None:
        self._request("DELETE", self._scan_path(scan_id))

    def scan_list(self, *, filters: dict[str, str | int]) -> dict[str, Any]:
        """One page of the caller's scans (`count`, `next`, `previous`, `results`)."""
        query = urllib.parse.urlencode({name: value for name, value in filters.items() if value not in (None, "")})
        return self._request("GET", "api/v1/scans/" + (f"?{query}" if query else ""))

    def _scan_path(self, scan_id_or_url: str) -> str:
        if scan_id_or_url.startswith(("http://", "https://")):
            return scan_id_or_url
        return f"api/v1/scans/{urllib.parse.quote(scan_id_or_url, safe='')}/"

    def _request(
        self, method: str, path_or_url: str, *, body: bytes | None = None, content_type: str | None = None
    ) -> Any:
        url = urllib.parse.urljoin(self.base_url, path_or_url)
        if urllib.parse.urlsplit(url).scheme not in ALLOWED_SCHEMES:
            raise ApiError(f"the server URL must start with http:// or https://, not {url!r}")
        headers = {"Authorization": f"Token {self.token}", "Accept": "application/json", "User-Agent": USER_AGENT}
        if content_type:
            headers["Content-Type"] = content_type
        # Opened only by the http(s)-only opener, whatever the URL says.
        request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310
        try:
            with self._opener.open(request, timeout=self.request_timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            message = _error_detail(exc)
            if exc.code == 429:
                raise _RateLimited(message, retry_after=_retry_after_seconds(exc)) from None
            raise ApiError(message, status=exc.code) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"could not reach {self.base_url}: {reason}") from None
        if not payload:
            return None
        try:
            return json.loads(payload)
        except ValueError:
            raise ApiError(f"the server at {self.base_url} did not answer with JSON (is UNMASK_URL right?)") from None


def http_only_opener() -> urllib.request.OpenerDirector:
    """A urllib opener that speaks http:// and https:// only, on the first request and on every redirect.

    `urllib.request.urlopen` also opens file:, ftp: and data: URLs; this opener has no handler for them, so such
    a URL (a mistyped UNMASK_URL, a server redirecting to file:///etc/passwd) fails as an unknown URL type.
    The environment's HTTP_PROXY and HTTPS_PROXY (and NO_PROXY) are honoured as urlopen honours them.
    """
    proxies = {scheme: proxy for scheme, proxy in urllib.request.getproxies().items() if scheme in ALLOWED_SCHEMES}
    opener = urllib.request.OpenerDirector()
    for handler in (
        # Only http and https proxies: a proxy for another scheme (ftp_proxy) would open that scheme too.
        urllib.request.ProxyHandler(proxies),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPErrorProcessor(),
        # Without it an unhandled scheme makes `open` return None instead of failing.
        urllib.request.UnknownHandler(),
    ):
        opener.add_handler(handler)
    return opener


class _RateLimited(ApiError):
    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


def _multipart_body(path: Path) -> tuple[bytes, str]:
    """A multipart/form-data body with the file as the `file` field (the server decides the type from content)."""
    boundary = f"unmask-{uuid.uuid4().hex}"
    filename = os.path.basename(path).replace('"', "_").replace("\r", "_").replace("\n", "_")
    file_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {file_type}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + Path(path).read_bytes() + tail, f"multipart/form-data; boundary={boundary}"


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        payload = json.loads(exc.read() or b"{}")
    except ValueError:
        payload = {}
    if isinstance(payload, dict):
        if isinstance(payload.get("detail"), str):
            return payload["detail"]
        if payload:
            return "; ".join(f"{field}: {' '.join(map(str, errors))}" for field, errors in payload.items())
    return f"HTTP {exc.code} {exc.reason}"


def _retry_after_seconds(exc: urllib.error.HTTPError) -> int:
    try:
        return max(1, int(exc.headers.get("Retry-After", "5")))
    except ValueError:
        return 5
