"""Scan by URL of a page that only a video site's own player can resolve: yt-dlp finds the video file in it.

yt-dlp is asked for the page (`extract_info(download=False)`): no cache, no cookies, no playlist (the first entry
of one), and a single progressive http(s) file (video and audio, or video alone; never HLS or DASH) of at most
1080p, preferably one whose declared size is within `UNMASK_URL_SCAN_MAX_BYTES`. The file itself is downloaded by
`scans.url_fetch` like any other link, so the size and time limits and the SSRF checks apply to its bytes.

Every HTTP request yt-dlp itself makes (the page, its player's configuration, API calls, their redirects) goes
through `_CheckedRH`, the only request handler of the `YoutubeDL` used here (`_CheckedYoutubeDL`): it sends the
request with `url_fetch.open_checked`, which resolves and checks every hop (redirects followed one by one, not by
yt-dlp) and connects only to the checked addresses. A refused request is never sent; it is the reason given when
the page cannot be resolved. Requests and reads wait only for what is left of the scan's download time.
"""

from __future__ import annotations

import functools
import http.client
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yt_dlp
from django.conf import settings
from yt_dlp.extractor import gen_extractor_classes
from yt_dlp.networking import Request, Response
from yt_dlp.networking.common import RequestDirector, RequestHandler
from yt_dlp.networking.exceptions import HTTPError, TransportError
from yt_dlp.utils import DownloadError, ExtractorError, UnsupportedError, YoutubeDLError, unsmuggle_url

from scans.url_fetch import (
    NO_MEDIA_MESSAGE,
    FetchFailed,
    FetchRefused,
    VideoNotFound,
    open_checked,
    read_chunk,
    too_large,
    too_slow,
)

logger = logging.getLogger(__name__)

MAX_HEIGHT = 1080
# What one of yt-dlp's own responses (a page, a player's configuration, an API answer) may weigh; the media is
# never one of them. Watch pages and player scripts of the large video sites stay well under it.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024
# Not forwarded from yt-dlp's headers: cookies are never sent, the body is read as it comes (no decoding here).
_HEADERS_NOT_SENT = {"cookie", "host", "accept-encoding", "content-length"}
NOT_RESOLVED = "The page's video could not be resolved"


@dataclass(frozen=True)
class ResolvedVideo:
    """The video file yt-dlp chose in a page: its URL, the headers to ask for it with, a name to show for it."""

    media_url: str
    headers: dict[str, str]
    filename: str


def has_dedicated_extractor(url: str) -> bool:
    """Whether one of yt-dlp's site extractors (not its generic page reader) claims `url`: a video site's page,
    which yt-dlp reads better than a search for embedded media (whose `og:image` would be a thumbnail)."""
    return any(extractor.suitable(url) for extractor in _site_extractors())


@functools.cache
def _site_extractors() -> tuple[type, ...]:
    return tuple(
        extractor for extractor in gen_extractor_classes() if extractor.ie_key() != "Generic" and extractor.working()
    )


def format_selector(max_bytes: int) -> str:
    """yt-dlp's format selection: one progressive http(s) file, video and audio before video alone, <= 1080p;
    first among those whose declared size fits, then any (the download's own limit then refuses it)."""
    single_file = f"[protocol^=http][protocol!*=dash][height<=?{MAX_HEIGHT}]"
    fits = f"[filesize<=?{max_bytes}][filesize_approx<=?{max_bytes}]"
    return "/".join(
        (f"b{single_file}{fits}", f"bv{single_file}{fits}", f"b{single_file}", f"bv{single_file}"),
    )


def video_page_resolve(url: str, *, deadline: float) -> ResolvedVideo:
    """The video file yt-dlp finds in the page `url`; `FetchFailed` saying why when there is none."""
    refusals: list[str] = []
    params = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": _YtDlpLog(),
        "color": "no_color",
        "cachedir": False,
        "cookiefile": None,
        "noplaylist": True,
        "playlist_items": "1",
        "format": format_selector(settings.UNMASK_URL_SCAN_MAX_BYTES),
        "check_formats": False,
        "extractor_retries": 0,
        "retries": 0,
        "simulate": True,
        "usenetrc": False,
        "remote_components": [],
    }
    try:
        with _CheckedYoutubeDL(params, deadline=deadline, refusals=refusals) as ydl:
            info = ydl.extract_info(url, download=False)
    except YoutubeDLError as exc:
        # A DownloadError wraps what the extractor raised; a read outside an extractor's own request (the first
        # bytes of a page) raises the transport error as it is.
        raise _failure(exc, refusals=refusals, deadline=deadline) from None
    if time.monotonic() > deadline:
        raise FetchFailed(too_slow())
    video = _first_video(info)
    media_url = video.get("url") if video else None
    if not isinstance(media_url, str) or not media_url:
        raise VideoNotFound(f"{NOT_RESOLVED}: yt-dlp found no single video file in it.")
    # An extractor may pass data to the next one in the URL's fragment; the file's URL is what is left.
    media_url = unsmuggle_url(media_url)[0]
    headers = {
        str(name): str(value)
        for name, value in (video.get("http_headers") or {}).items()
        if str(name).lower() not in _HEADERS_NOT_SENT
    }
    return ResolvedVideo(media_url=media_url, headers=headers, filename=_video_filename(video))


def _first_video(info: dict[str, Any] | None) -> dict[str, Any] | None:
    while info is not None and info.get("_type") == "playlist":
        entries: Iterable[Any] = info.get("entries") or ()
        info = next(iter(entries), None)
    return info


def _video_filename(video: dict[str, Any]) -> str:
    title = str(video.get("title") or video.get("id") or "video").strip()[:120]
    extension = str(video.get("ext") or "")
    return f"{title}.{extension}" if extension.isalnum() else title


def _failure(error: YoutubeDLError, *, refusals: list[str], deadline: float) -> FetchFailed:
    """What the user reads: the refused address if yt-dlp asked for one, else yt-dlp's own reason, shortly.

    `VideoNotFound` unless a request was refused or the time is up: yt-dlp, not the link, failed then.
    """
    if refusals:
        return FetchFailed(f"{NOT_RESOLVED}: {_sentence_tail(refusals[0])}")
    if time.monotonic() > deadline:
        return FetchFailed(too_slow())
    cause = error.__context__ if isinstance(error, DownloadError) else error
    if isinstance(cause, UnsupportedError):
        return VideoNotFound(NO_MEDIA_MESSAGE)
    if isinstance(cause, ExtractorError):
        reason = cause.orig_msg
    else:
        reason = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).removeprefix("ERROR:").strip()
    if reason.startswith("Requested format is not available"):
        return VideoNotFound(
            f"{NOT_RESOLVED}: it offers no single video file of at most {MAX_HEIGHT}p over http(s) "
            "(streams such as HLS and DASH are not downloaded)."
        )
    reason = reason.splitlines()[0] if reason else "yt-dlp gave no reason"
    if len(reason) > 300:
        reason = reason[:299] + "…"
    return VideoNotFound(f"{NOT_RESOLVED}: {_sentence_tail(reason).rstrip('.')}.")


def _sentence_tail(text: str) -> str:
    """`text` continuing a sentence: its first letter in lower case, unless it starts an acronym (HTTP)."""
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


class _YtDlpLog:
    """yt-dlp's output, to the debug log only: a worker's log is not a terminal."""

    def debug(self, message: str) -> None:
        logger.debug("yt-dlp: %s", message)

    info = debug
    warning = debug
    error = debug


class _CheckedYoutubeDL(yt_dlp.YoutubeDL):
    """A YoutubeDL whose only way onto the network is `_CheckedRH`."""

    def __init__(self, params: dict[str, Any], *, deadline: float, refusals: list[str]) -> None:
        self._checked_handler = functools.partial(_CheckedRH, deadline=deadline, refusals=refusals)
        super().__init__(params)

    def build_request_director(self, handlers: Iterable[type], preferences: Any = None) -> RequestDirector:
        # Whatever handlers yt-dlp brings (urllib, requests, curl_cffi, websockets), none is given a request here:
        # with the checked one alone, no request can fall back to a handler that skips the checks.
        return super().build_request_director([self._checked_handler])


class _CheckedRH(RequestHandler):
    """Sends each of yt-dlp's requests with `url_fetch.open_checked` (SSRF checks after DNS, on every redirect,
    the socket opened to a checked address); never a proxy, never a cookie. A refused request is recorded and
    fails as a transport error, as if the address did not answer; any other status than 2xx is an `HTTPError`."""

    _SUPPORTED_URL_SCHEMES = ("http", "https")
    _SUPPORTED_PROXY_SCHEMES = None
    _SUPPORTED_FEATURES = None

    def __init__(self, *, deadline: float, refusals: list[str], **options: Any) -> None:
        super().__init__(**options)
        self._deadline = deadline
        self._refusals = refusals

    def _check_extensions(self, extensions: dict[str, Any]) -> None:
        super()._check_extensions(extensions)
        # The cookie jar and timeout of a request are not used: no cookies are sent, and the deadline rules.
        for name in ("cookiejar", "timeout", "legacy_ssl", "keep_header_casing"):
            extensions.pop(name, None)

    def _send(self, request: Request) -> Response:
        headers = {
            name: value for name, value in self._get_headers(request).items() if name.lower() not in _HEADERS_NOT_SENT
        }
        headers["Accept-Encoding"] = "identity"
        try:
            final_url, connection, response = open_checked(
                request.url, deadline=self._deadline, headers=headers, method=request.method, body=request.data
            )
        except FetchRefused as exc:
            self._refusals.append(exc.message)
            raise TransportError(exc.message, handler=self) from None
        except FetchFailed as exc:
            raise TransportError(exc.message, handler=self) from None
        checked = _CheckedResponse(connection, response, url=final_url, deadline=self._deadline)
        if not 200 <= response.status < 300:
            raise HTTPError(checked)
        return checked


class _CheckedResponse(Response):
    """A response read within the deadline and at most `MAX_RESPONSE_BYTES`; closing it closes its connection."""

    def __init__(
        self,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        *,
        url: str,
        deadline: float,
    ) -> None:
        super().__init__(fp=response, url=url, headers=response.headers, status=response.status, reason=response.reason)
        self._connection = connection
        self._deadline = deadline
        self._received = 0

    def read(self, amt: int | None = None) -> bytes:
        wanted = amt if amt is not None and amt >= 0 else None
        parts: list[bytes] = []
        read = 0
        while wanted is None or read < wanted:
            size = _CHUNK_BYTES if wanted is None else min(_CHUNK_BYTES, wanted - read)
            try:
                chunk = read_chunk(self.fp, deadline=self._deadline, size=size)
            except FetchFailed as exc:
                raise TransportError(exc.message) from None
            if not chunk:
                break
            self._received += len(chunk)
            if self._received > MAX_RESPONSE_BYTES:
                raise TransportError(too_large(MAX_RESPONSE_BYTES))
            parts.append(chunk)
            read += len(chunk)
        return b"".join(parts)

    def close(self) -> None:
        self._connection.close()
        super().close()
