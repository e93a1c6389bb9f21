"""Scan by URL: download the media a link names, that a web page embeds, or that a video site's player plays,
within size and time limits and the SSRF policy of `scans.destinations` (every hop checked after DNS, the socket
opened to a checked address).

A link may be the image or video itself, or a page: then its `og:video` (`og:video:url`, `og:video:secure_url`),
`<video src>` or `<video><source src>`, else its `og:image`, is fetched instead (one page deep). A page in which
none is found, and first of all a page of a video site that yt-dlp has an extractor for, is resolved by yt-dlp
(`scans.video_pages`): every request yt-dlp makes goes through `open_checked` here, and the video file it chooses
is downloaded by `_download` like any other. The bytes land in a temporary file and are judged afterwards exactly
like an upload (`scans.uploads.inspect_upload`).
"""

from __future__ import annotations

import functools
import http.client
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath

from django.conf import settings

from scans.destinations import (
    DestinationRefused,
    connect_to_checked_address,
    destination_parse,
    destination_resolve,
    redirect_target,
)

MAX_REDIRECTS = 5
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
# A page is read only this far looking for the media it embeds.
MAX_PAGE_BYTES = 2 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024
USER_AGENT = "Unmask-URL-scan/1"
CALLER = "scans by URL"
FALLBACK_NAME = "linked-media"
NO_MEDIA_MESSAGE = (
    "The link is a web page without an image or video in it that Unmask can find (og:video, og:image, "
    "<video> or <source>, or a video player that yt-dlp knows): link to the media itself."
)


class FetchFailed(Exception):
    """The link gave no media to scan; `message` says why, for the scan's error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FetchRefused(FetchFailed):
    """A request, or one of its redirects, named an address that scans by URL may not call (SSRF)."""


class VideoNotFound(FetchFailed):
    """yt-dlp found no video file to download in a page, whatever its reason but a refused address or the time."""


@dataclass(frozen=True)
class FetchedMedia:
    """Downloaded bytes at `path`, the name to show for them, and the URL they came from at last."""

    path: Path
    filename: str
    media_url: str


def source_url_check(url: str) -> None:
    """Refuse at once (`FetchFailed`) a link that could never be fetched: not http(s), or a host that does not
    resolve or resolves to an address that may not be called. The worker checks every hop again."""
    try:
        destination_resolve(url, allow_private=settings.UNMASK_URL_SCAN_ALLOW_PRIVATE, caller=CALLER)
    except DestinationRefused as exc:
        raise FetchFailed(exc.message) from None


@contextmanager
def fetched_media(url: str) -> Iterator[FetchedMedia]:
    """Download the media of `url` to a temporary file (removed afterwards); `FetchFailed` with the reason."""
    # Loaded here, by the worker that downloads, not by every web process that checks a link: yt-dlp brings
    # some 1,800 extractors.
    from scans import video_pages

    deadline = time.monotonic() + settings.UNMASK_URL_SCAN_TIMEOUT
    with tempfile.TemporaryDirectory(prefix="unmask-url-") as folder:
        target = Path(folder) / "download"
        downloaded: tuple[str, str] | None = None
        video_site_failure: VideoNotFound | None = None
        if video_pages.has_dedicated_extractor(url):
            try:
                downloaded = _download_video_of_page(url, target, deadline=deadline)
            except VideoNotFound as exc:
                # A video site's page may show a photo instead (a post, a gallery): it is read as any page then.
                video_site_failure = exc
        if downloaded is None:
            downloaded = _download_media(url, target, deadline=deadline, video_site_failure=video_site_failure)
        final_url, filename = downloaded
        yield FetchedMedia(path=target, filename=filename, media_url=final_url)


def _download_media(
    url: str, target: Path, *, deadline: float, video_site_failure: VideoNotFound | None
) -> tuple[str, str]:
    """The link itself, else the media its page embeds, else the video yt-dlp finds in the page (unless yt-dlp
    already found none: `video_site_failure`); (the URL answered at last, the name to show)."""
    max_bytes = settings.UNMASK_URL_SCAN_MAX_BYTES
    final_url, content_type = _download(url, target, deadline=deadline, max_bytes=max_bytes)
    if not _is_page(content_type, target):
        return final_url, _filename(final_url)
    embedded = embedded_media_url(target.read_bytes()[:MAX_PAGE_BYTES].decode("utf-8", "replace"), final_url)
    if embedded is None:
        if video_site_failure is not None:
            raise video_site_failure
        return _download_video_of_page(final_url, target, deadline=deadline)
    final_url, content_type = _download(embedded, target, deadline=deadline, max_bytes=max_bytes)
    if _is_page(content_type, target):
        raise FetchFailed("The media the page names is another web page, not an image or a video.")
    return final_url, _filename(final_url)


def _download_video_of_page(page_url: str, target: Path, *, deadline: float) -> tuple[str, str]:
    """Download the video file yt-dlp finds in the page; (the URL answered at last, the name to show)."""
    from scans import video_pages

    video = video_pages.video_page_resolve(page_url, deadline=deadline)
    final_url, content_type = _download(
        video.media_url,
        target,
        deadline=deadline,
        max_bytes=settings.UNMASK_URL_SCAN_MAX_BYTES,
        headers=video.headers,
    )
    if _is_page(content_type, target):
        raise FetchFailed("The video the page's player names is another web page, not a video.")
    return final_url, video.filename


def _is_page(content_type: str, path: Path) -> bool:
    if content_type.split(";", 1)[0].strip().lower() in {"text/html", "application/xhtml+xml"}:
        return True
    with path.open("rb") as handle:
        start = handle.read(512).lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html"))


def _filename(url: str) -> str:
    name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    return name or FALLBACK_NAME


def _download(
    url: str, target: Path, *, deadline: float, max_bytes: int, headers: dict[str, str] | None = None
) -> tuple[str, str]:
    """GET `url` into `target`, following checked redirects; (the URL answered at last, its Content-Type)."""
    # A video site's player may want its own headers (Referer, User-Agent) for the file it names.
    request_headers = {"User-Agent": USER_AGENT, "Accept": "image/*, video/*, */*", **(headers or {})}
    final_url, connection, response = open_checked(url, deadline=deadline, headers=request_headers)
    try:
        if response.status != 200:
            raise FetchFailed(f"The link answered HTTP {response.status}, not the media.")
        declared = response.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise FetchFailed(too_large(max_bytes))
        _save_body(response, target, deadline=deadline, max_bytes=max_bytes)
        return final_url, response.getheader("Content-Type") or ""
    finally:
        connection.close()


def open_checked(
    url: str,
    *,
    deadline: float,
    headers: dict[str, str],
    method: str = "GET",
    body: bytes | None = None,
) -> tuple[str, http.client.HTTPConnection, http.client.HTTPResponse]:
    """Send one request to `url`, following redirects hop by hop, each hop's host resolved and checked and the
    socket opened to a checked address; (the URL answered at last, its open connection, its response, not read).

    The caller closes the connection. `FetchRefused` for a refused address, `FetchFailed` for any other failure
    (unreachable, too slow, too many redirects); a response of any other status is returned as it is.
    """
    allow_private = settings.UNMASK_URL_SCAN_ALLOW_PRIVATE
    hop_url = url
    for _hop in range(MAX_REDIRECTS + 1):
        try:
            destination = destination_resolve(hop_url, allow_private=allow_private, caller=CALLER)
        except DestinationRefused as exc:
            via = "" if hop_url == url else f"The link redirects to {hop_url}, which is not followed: "
            raise FetchRefused(f"{via}{exc.message}") from None
        connection_class = http.client.HTTPSConnection if destination.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(destination.host, destination.port, timeout=_remaining(deadline))
        connection._create_connection = functools.partial(connect_to_checked_address, destination)
        try:
            try:
                connection.request(method, destination.target, body=body, headers=headers)
                response = connection.getresponse()
            except TimeoutError:
                raise FetchFailed(too_slow()) from None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                raise FetchFailed(f"The link could not be reached ({_reason(exc)}).") from None
            location = response.getheader("Location") or ""
            if response.status not in REDIRECT_STATUSES or not location:
                return hop_url, connection, response
            try:
                hop_url = redirect_target(from_url=hop_url, location=location)
            except DestinationRefused as exc:
                raise FetchRefused(exc.message) from None
        except BaseException:
            connection.close()
            raise
        connection.close()
        # As browsers do: a 303 (and a 301 or 302 after a POST) is followed with a GET, without the body.
        if response.status == 303 or (response.status in {301, 302} and method == "POST"):
            method = "HEAD" if method == "HEAD" else "GET"
            body = None
            headers = {name: value for name, value in headers.items() if name.lower() != "content-type"}
    raise FetchFailed(f"The link redirects more than {MAX_REDIRECTS} times; it is not followed further.")


def _save_body(response: http.client.HTTPResponse, target: Path, *, deadline: float, max_bytes: int) -> None:
    received = 0
    with target.open("wb") as handle:
        while True:
            chunk = read_chunk(response, deadline=deadline)
            if not chunk:
                return
            received += len(chunk)
            if received > max_bytes:
                raise FetchFailed(too_large(max_bytes))
            handle.write(chunk)


def read_chunk(response: http.client.HTTPResponse, *, deadline: float, size: int = _CHUNK_BYTES) -> bytes:
    """At most `size` bytes of the body (b"" at its end), waiting no longer than what is left until `deadline`."""
    # Each read waits at most for what is left of the whole download's time.
    if response.fp is not None and response.fp.raw is not None and hasattr(response.fp.raw, "_sock"):
        response.fp.raw._sock.settimeout(_remaining(deadline))
    try:
        # read1: at most one receive, so a trickle cannot hold one read past the deadline.
        chunk = response.read1(size)
    except TimeoutError:
        raise FetchFailed(too_slow()) from None
    except (OSError, http.client.HTTPException) as exc:
        raise FetchFailed(f"The download broke off ({_reason(exc)}).") from None
    if chunk and time.monotonic() > deadline:
        raise FetchFailed(too_slow())
    return chunk


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchFailed(too_slow())
    return remaining


def too_slow() -> str:
    return f"The download did not finish within {settings.UNMASK_URL_SCAN_TIMEOUT:g} seconds."


def too_large(max_bytes: int) -> str:
    return f"The linked file is larger than {max_bytes / 1024 / 1024:.0f} MB, the most a scan by URL downloads."


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class _EmbeddedMedia(HTMLParser):
    """Collects the media a page names: Open Graph video and image, <video src> and <video><source src>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.videos: list[str] = []
        self.images: list[str] = []
        self._in_video = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): (value or "").strip() for name, value in attrs}
        if tag == "meta":
            key = (values.get("property") or values.get("name") or "").lower()
            content = values.get("content", "")
            if content and key in {"og:video", "og:video:url", "og:video:secure_url"}:
                self.videos.append(content)
            elif content and key in {"og:image", "og:image:url", "og:image:secure_url"}:
                self.images.append(content)
        elif tag == "video":
            self._in_video = True
            if values.get("src"):
                self.videos.append(values["src"])
        elif tag == "source" and self._in_video and values.get("src"):
            self.videos.append(values["src"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "video":
            self._in_video = False


def embedded_media_url(page: str, page_url: str) -> str | None:
    """The absolute URL of the media a page embeds (a video before an image), or None; only http(s) URLs."""
    parser = _EmbeddedMedia()
    parser.feed(page)
    for candidate in (*parser.videos, *parser.images):
        absolute = urllib.parse.urljoin(page_url, candidate)
        try:
            destination_parse(absolute)
        except DestinationRefused:
            continue
        return absolute
    return None
