"""Scan by URL: a link to an image, a video or a page that embeds one, downloaded by the worker within size and
time limits and the SSRF policy (after DNS and on every redirect), then scanned like an upload. Pages whose video
only a player names are resolved by yt-dlp, whose own requests meet the same checks and limits.

Media and pages come from a loopback server. Where a test needs a public name, `socket.getaddrinfo` is patched
to answer for it, and the connection to that public address is sent to the loopback server instead (no packet
leaves the machine); every other connection outside loopback is refused and recorded.
"""

from __future__ import annotations

import contextlib
import errno
import http.server
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from scans.jobs import fetch_scan
from scans.models import Scan
from scans.services import scan_create_from_url
from scans.tests.uploads import avi_bytes, gradient_png
from scans.url_fetch import embedded_media_url

pytestmark = pytest.mark.django_db

PUBLIC_ADDRESS = "93.184.216.34"
LIST_URL = reverse("api:scan-list")


class MediaServer:
    """A loopback HTTP server whose routes the test sets: path -> (status, headers, body or a body-writing callable)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], Any]] = {}
        self.requested: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requested.append(self.path)
                status, headers, body = server.routes.get(self.path, (404, {}, b"not here"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if callable(body):
                    self.end_headers()
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        body(self.wfile)
                    return
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def media_server() -> Iterator[MediaServer]:
    server = MediaServer()
    server.routes["/photo.png"] = (200, {"Content-Type": "image/png"}, gradient_png())
    server.routes["/clip.avi"] = (200, {"Content-Type": "video/x-msvideo"}, avi_bytes())
    yield server
    server.close()


@pytest.fixture
def loopback_allowed(settings) -> None:
    settings.UNMASK_URL_SCAN_ALLOW_PRIVATE = True


class Network:
    """Patched name lookups and connections: `names` answer the given addresses; a connection to PUBLIC_ADDRESS
    goes to the loopback server; any other address outside loopback is refused and recorded."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.refused: list[tuple[str, int]] = []
        self.rerouted: list[tuple[str, int]] = []


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch, media_server: MediaServer) -> Network:
    patched = Network()
    real_getaddrinfo = socket.getaddrinfo
    real_create_connection = socket.create_connection

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list:
        name = host.decode() if isinstance(host, bytes) else host
        if name in patched.names:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (patched.names[name], int(port or 0)))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        host, port = address
        if host == PUBLIC_ADDRESS:
            patched.rerouted.append((host, port))
            return real_create_connection(("127.0.0.1", media_server.port), *args, **kwargs)
        if not ipaddress.ip_address(host).is_loopback:
            patched.refused.append((host, port))
            raise ConnectionRefusedError(errno.ECONNREFUSED, "refused by the test: not a loopback address")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    return patched


def _fetch(owner, url: str) -> Scan:
    """A scan of `url` (the submit-time check skipped), downloaded by the real job function."""
    scan = scan_create_from_url(owner=owner, source_url=url)
    fetch_scan(str(scan.id))
    scan.refresh_from_db()
    return scan


# --- The whole way, through the API and a real worker ---------------------------------------------------


def test_a_page_embedding_an_image_is_downloaded_and_scanned_like_an_upload(
    alice, api_client_for, media_server, loopback_allowed, tiny_models, run_worker
):
    media_server.routes["/story.html"] = (
        200,
        {"Content-Type": "text/html; charset=utf-8"},
        b'<html><head><meta property="og:image" content="/photo.png"></head><body>A story</body></html>',
    )
    client = api_client_for(alice)

    response = client.post(LIST_URL, {"source_url": media_server.url("/story.html")}, format="json")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "fetching" and body["source_url"] == media_server.url("/story.html")
    run_worker()  # the download, which queues the analysis when it commits
    run_worker()  # the analysis
    detail = client.get(body["url"]).json()
    assert detail["status"] == "done", detail["error"]
    assert (detail["kind"], detail["original_filename"], detail["verdict"]) == ("image", "photo.png", "no_face")
    scan = Scan.objects.get(pk=body["id"])
    assert scan.media_url == media_server.url("/photo.png")
    assert scan.file.open("rb").read() == gradient_png()
    assert media_server.requested == ["/story.html", "/photo.png"]


def test_a_video_in_a_page_is_found_in_its_video_source(alice, media_server, loopback_allowed, tiny_models):
    media_server.routes["/watch"] = (
        200,
        {"Content-Type": "text/html"},
        b'<html><body><video controls><source src="clip.avi" type="video/x-msvideo"></video></body></html>',
    )

    scan = _fetch(alice, media_server.url("/watch"))

    assert (scan.status, scan.kind, scan.original_filename) == ("queued", "video", "clip.avi")
    assert scan.media_url == media_server.url("/clip.avi")


def test_a_direct_link_to_the_media_needs_no_page(alice, media_server, loopback_allowed, tiny_models):
    scan = _fetch(alice, media_server.url("/photo.png"))

    assert (scan.status, scan.kind, scan.size_bytes) == ("queued", "image", len(gradient_png()))


# --- SSRF ------------------------------------------------------------------------------------------------


def test_a_redirect_to_127_0_0_1_is_not_followed(alice, media_server, network, settings, tiny_models):
    settings.UNMASK_URL_SCAN_ALLOW_PRIVATE = False
    network.names["news.example"] = PUBLIC_ADDRESS
    media_server.routes["/story"] = (302, {"Location": media_server.url("/photo.png")}, b"")

    scan = _fetch(alice, f"http://news.example:{media_server.port}/story")

    assert scan.status == Scan.Status.FAILED
    assert scan.error_message == (
        f"The link redirects to {media_server.url('/photo.png')}, which is not followed: 127.0.0.1 is a loopback "
        "address, which scans by URL may not call (only public addresses are)."
    )
    assert media_server.requested == ["/story"]
    assert network.rerouted == [(PUBLIC_ADDRESS, media_server.port)]


def test_a_redirect_to_a_name_resolving_to_a_private_address_is_not_followed(
    alice, media_server, network, settings, tiny_models
):
    settings.UNMASK_URL_SCAN_ALLOW_PRIVATE = False
    network.names["news.example"] = PUBLIC_ADDRESS
    network.names["intranet.example"] = "10.1.2.3"
    media_server.routes["/story"] = (301, {"Location": "http://intranet.example/admin.png"}, b"")

    scan = _fetch(alice, f"http://news.example:{media_server.port}/story")

    assert scan.status == Scan.Status.FAILED
    assert "intranet.example resolves to 10.1.2.3: a private address" in scan.error_message
    assert network.refused == []


def test_a_link_whose_name_resolves_to_a_private_address_is_refused_at_once(alice, api_client_for, network, settings):
    settings.UNMASK_URL_SCAN_ALLOW_PRIVATE = False
    network.names["intranet.example"] = "10.1.2.3"

    response = api_client_for(alice).post(LIST_URL, {"source_url": "http://intranet.example/photo.jpg"}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "This link cannot be scanned: intranet.example resolves to 10.1.2.3: a private address, which "
        "scans by URL may not call (only public addresses are)."
    }
    assert not Scan.objects.exists()


def test_a_name_that_turns_private_after_the_check_is_refused_by_the_worker(
    alice, media_server, network, settings, tiny_models
):
    settings.UNMASK_URL_SCAN_ALLOW_PRIVATE = False
    network.names["cdn.example"] = "10.9.8.7"

    scan = _fetch(alice, "http://cdn.example/photo.png")

    assert scan.status == Scan.Status.FAILED
    assert "cdn.example resolves to 10.9.8.7: a private address" in scan.error_message
    assert network.refused == [] and media_server.requested == []


@pytest.mark.parametrize("address", ["169.254.169.254", "127.0.0.1"])
def test_link_local_is_refused_even_where_private_addresses_are_allowed(address, alice, api_client_for, settings):
    settings.UNMASK_URL_SCAN_ALLOW_PRIVATE = address == "169.254.169.254"

    response = api_client_for(alice).post(LIST_URL, {"source_url": f"http://{address}/latest/"}, format="json")

    assert response.status_code == 400
    kind = "link-local address, which scans by URL never call" if address.startswith("169") else "loopback address"
    assert kind in response.json()["detail"]


# --- Pages only yt-dlp resolves (a video player's setup) -------------------------------------------------


def _player_page(file_url: str, title: str = "Flood in the valley") -> bytes:
    """A page whose video only a player script names: nothing Unmask's own page reader finds, but yt-dlp's
    generic extractor reads the JW Player setup."""
    return (
        f'<html><head><title>{title}</title></head><body><div id="player"></div>'
        f'<script>jwplayer("player").setup({{"file": "{file_url}", "width": 640}});</script></body></html>'
    ).encode()


def test_a_video_player_page_is_resolved_by_yt_dlp_and_scanned_like_an_upload(
    alice, api_client_for, media_server, loopback_allowed, tiny_models, run_worker
):
    media_server.routes["/watch/flood"] = (200, {"Content-Type": "text/html"}, _player_page("/clip.avi"))
    client = api_client_for(alice)

    response = client.post(LIST_URL, {"source_url": media_server.url("/watch/flood")}, format="json")

    assert response.status_code == 202, response.content
    run_worker()  # the download: the page, yt-dlp's reading of it, the video file
    run_worker()  # the analysis
    detail = client.get(response.json()["url"]).json()
    assert detail["status"] == "done", detail["error"]
    assert (detail["kind"], detail["original_filename"]) == ("video", "Flood in the valley.avi")
    scan = Scan.objects.get(pk=response.json()["id"])
    assert scan.media_url == media_server.url("/clip.avi")
    assert scan.file.open("rb").read() == avi_bytes()
    # Unmask's own look at the page, yt-dlp's, then the file through the checked download.
    assert media_server.requested == ["/watch/flood", "/watch/flood", "/clip.avi"]


def test_a_video_that_yt_dlp_finds_at_a_private_address_is_not_downloaded(
    alice, media_server, network, settings, tiny_models
):
    settings.UNMASK_URL_SCAN_ALLOW_PRIVATE = False
    network.names["news.example"] = PUBLIC_ADDRESS
    network.names["intranet.example"] = "10.1.2.3"
    media_server.routes["/watch"] = (
        200,
        {"Content-Type": "text/html"},
        _player_page("http://intranet.example/clip.avi"),
    )

    scan = _fetch(alice, f"http://news.example:{media_server.port}/watch")

    assert scan.status == Scan.Status.FAILED
    assert scan.error_message == (
        "intranet.example resolves to 10.1.2.3: a private address, which scans by URL may not call (only public "
        "addresses are)."
    )
    assert network.refused == [] and media_server.requested == ["/watch", "/watch"]


def test_yt_dlp_does_not_request_a_page_whose_name_turned_private(alice, media_server, network, settings, tiny_models):
    settings.UNMASK_URL_SCAN_ALLOW_PRIVATE = False
    network.names["news.example"] = PUBLIC_ADDRESS

    def page_then_rebind(out: Any) -> None:
        # DNS rebinding: the name answers a private address once the first request has been checked.
        network.names["news.example"] = "10.9.8.7"
        out.write(_player_page("/clip.avi"))

    media_server.routes["/watch"] = (200, {"Content-Type": "text/html"}, page_then_rebind)

    scan = _fetch(alice, f"http://news.example:{media_server.port}/watch")

    assert scan.status == Scan.Status.FAILED
    assert scan.error_message == (
        "The page's video could not be resolved: news.example resolves to 10.9.8.7: a private address, which "
        "scans by URL may not call (only public addresses are)."
    )
    assert network.refused == [] and media_server.requested == ["/watch"]


def test_a_redirect_inside_yt_dlp_to_127_0_0_1_is_not_followed(alice, media_server, network, settings, tiny_models):
    settings.UNMASK_URL_SCAN_ALLOW_PRIVATE = False
    network.names["news.example"] = PUBLIC_ADDRESS
    player = f"http://news.example:{media_server.port}/player/7"
    media_server.routes["/story"] = (
        200,
        {"Content-Type": "text/html"},
        f'<html><head><meta name="twitter:player" content="{player}"></head><body>A story</body></html>'.encode(),
    )
    media_server.routes["/player/7"] = (302, {"Location": media_server.url("/clip.avi")}, b"")

    scan = _fetch(alice, f"http://news.example:{media_server.port}/story")

    assert scan.status == Scan.Status.FAILED
    assert scan.error_message == (
        f"The page's video could not be resolved: the link redirects to {media_server.url('/clip.avi')}, which is "
        "not followed: 127.0.0.1 is a loopback address, which scans by URL may not call (only public addresses are)."
    )
    # yt-dlp read the page and asked for its player; the redirect's target was never requested.
    assert media_server.requested == ["/story", "/story", "/player/7"]


def test_a_page_neither_unmask_nor_yt_dlp_finds_a_video_in_says_so(alice, media_server, loopback_allowed):
    media_server.routes["/about"] = (200, {"Content-Type": "text/html"}, b"<html><body><p>About us</p></body></html>")

    scan = _fetch(alice, media_server.url("/about"))

    assert scan.status == Scan.Status.FAILED
    assert scan.error_message == (
        "The link is a web page without an image or video in it that Unmask can find (og:video, og:image, <video> "
        "or <source>, or a video player that yt-dlp knows): link to the media itself."
    )
    assert media_server.requested == ["/about", "/about"]


def test_a_player_whose_page_fails_for_yt_dlp_gives_its_reason_shortly(alice, media_server, loopback_allowed):
    media_server.routes["/story"] = (
        200,
        {"Content-Type": "text/html"},
        f'<meta name="twitter:player" content="{media_server.url("/gone")}">'.encode(),
    )

    scan = _fetch(alice, media_server.url("/story"))

    assert scan.status == Scan.Status.FAILED
    assert scan.error_message == (
        "The page's video could not be resolved: unable to download webpage: HTTP Error 404: Not Found."
    )


def test_an_oversize_video_chosen_by_yt_dlp_is_refused_by_the_size_limit(
    alice, media_server, loopback_allowed, settings
):
    settings.UNMASK_URL_SCAN_MAX_BYTES = 1024 * 1024
    media_server.routes["/watch"] = (200, {"Content-Type": "text/html"}, _player_page("/huge.mp4"))
    media_server.routes["/huge.mp4"] = (
        200,
        {"Content-Type": "video/mp4", "Content-Length": str(50 * 1024 * 1024)},
        b"",
    )

    scan = _fetch(alice, media_server.url("/watch"))

    assert scan.status == Scan.Status.FAILED
    assert scan.error_message == "The linked file is larger than 1 MB, the most a scan by URL downloads."


def test_yt_dlp_reading_a_slow_page_is_given_up_within_the_time_limit(alice, media_server, loopback_allowed, settings):
    settings.UNMASK_URL_SCAN_TIMEOUT = 2.0
    served: list[int] = []

    def fast_then_trickle(out: Any) -> None:
        served.append(1)
        if len(served) == 1:
            out.write(_player_page("/clip.avi"))
            return
        for _ in range(60):  # yt-dlp's own request of the page: one byte a tenth of a second
            out.write(b" ")
            out.flush()
            time.sleep(0.1)

    media_server.routes["/watch"] = (200, {"Content-Type": "text/html"}, fast_then_trickle)
    started = time.monotonic()

    scan = _fetch(alice, media_server.url("/watch"))

    assert scan.status == Scan.Status.FAILED
    assert scan.error_message == "The download did not finish within 2 seconds."
    assert time.monotonic() - started < 4
    assert "/clip.avi" not in media_server.requested


def test_a_page_whose_player_offers_only_a_stream_says_so(alice, media_server, loopback_allowed):
    media_server.routes["/live"] = (200, {"Content-Type": "text/html"}, _player_page("/live/master.m3u8"))
    media_server.routes["/live/master.m3u8"] = (
        200,
        {"Content-Type": "application/vnd.apple.mpegurl"},
        b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n360.m3u8\n",
    )

    scan = _fetch(alice, media_server.url("/live"))

    assert scan.status == Scan.Status.FAILED
    assert scan.error_message == (
        "The page's video could not be resolved: it offers no single video file of at most 1080p over http(s) "
        "(streams such as HLS and DASH are not downloaded)."
    )
    assert "/live/360.m3u8" not in media_server.requested


@pytest.fixture
def video_site(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every link counts as a page of a video site that yt-dlp has an extractor for."""
    from scans import video_pages

    monkeypatch.setattr(video_pages, "has_dedicated_extractor", lambda url: True)


def test_a_video_site_page_is_read_by_yt_dlp_first(alice, media_server, loopback_allowed, video_site, tiny_models):
    media_server.routes["/watch"] = (
        200,
        {"Content-Type": "text/html"},
        _player_page("/clip.avi").replace(b"<head>", b'<head><meta property="og:image" content="/photo.png">'),
    )

    scan = _fetch(alice, media_server.url("/watch"))

    # The video, not the thumbnail its og:image names; the page read once, by yt-dlp.
    assert (scan.status, scan.kind, scan.media_url) == ("queued", "video", media_server.url("/clip.avi"))
    assert media_server.requested == ["/watch", "/clip.avi"]


def test_a_video_site_page_without_a_video_is_read_as_any_page(
    alice, media_server, loopback_allowed, video_site, tiny_models
):
    media_server.routes["/post/1"] = (
        200,
        {"Content-Type": "text/html"},
        b'<html><head><meta property="og:image" content="/photo.png"></head><body>A photo post</body></html>',
    )

    scan = _fetch(alice, media_server.url("/post/1"))

    assert (scan.status, scan.kind, scan.media_url) == ("queued", "image", media_server.url("/photo.png"))
    assert media_server.requested == ["/post/1", "/post/1", "/photo.png"]


def test_the_format_chosen_is_one_progressive_file_within_the_limits():
    import yt_dlp

    from scans.video_pages import format_selector

    formats = [
        {"format_id": "hls-1080", "url": "https://v.example/1080.m3u8", "protocol": "m3u8_native", "height": 1080},
        {"format_id": "dash-720", "url": "https://v.example/720.mp4", "protocol": "http_dash_segments", "height": 720},
        {"format_id": "mp4-2160", "url": "https://v.example/2160.mp4", "height": 2160, "filesize": 1000},
        {"format_id": "mp4-1080-big", "url": "https://v.example/1080.mp4", "height": 1080, "filesize": 10**9},
        {"format_id": "mp4-720", "url": "https://v.example/720.mp4", "height": 720, "filesize": 10**6},
        {"format_id": "mp4-480", "url": "https://v.example/480.mp4", "height": 480},
    ]

    def chosen(offered: list[dict[str, Any]]) -> str:
        with yt_dlp.YoutubeDL({"quiet": True, "format": format_selector(50 * 1024 * 1024)}) as ydl:
            info = ydl.process_ie_result({"id": "v", "title": "v", "formats": offered}, download=False)
        return info["format_id"]

    assert chosen(formats) == "mp4-720"
    # Only files larger than the limit: the best of them, for the download's limit to refuse with its message.
    assert chosen([formats[0], formats[3]]) == "mp4-1080-big"


@pytest.mark.parametrize(
    ("url", "dedicated"),
    [
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", True),
        ("https://vimeo.com/76979871", True),
        ("https://news.example/2026/12/flood-video", False),
        ("http://127.0.0.1:8000/clip.avi", False),
    ],
)
def test_a_link_that_a_site_extractor_claims_counts_as_a_video_site_page(url, dedicated):
    from scans.video_pages import has_dedicated_extractor

    assert has_dedicated_extractor(url) is dedicated


# --- Size and time limits -----------------------------------------------------------------------------------


def test_a_declared_oversize_response_is_refused_before_it_is_read(alice, media_server, loopback_allowed, settings):
    settings.UNMASK_URL_SCAN_MAX_BYTES = 1024 * 1024
    media_server.routes["/huge.mp4"] = (
        200,
        {"Content-Type": "video/mp4", "Content-Length": str(50 * 1024 * 1024)},
        b"",
    )

    scan = _fetch(alice, media_server.url("/huge.mp4"))

    assert scan.status == Scan.Status.FAILED
    assert scan.error_message == "The linked file is larger than 1 MB, the most a scan by URL downloads."


def test_an_undeclared_oversize_response_is_cut_off(alice, media_server, loopback_allowed, settings):
    settings.UNMASK_URL_SCAN_MAX_BYTES = 1024 * 1024

    def endless(out: Any) -> None:
        for _ in range(64):
            out.write(b"\0" * 65536)

    media_server.routes["/stream.mp4"] = (200, {"Content-Type": "video/mp4", "Connection": "close"}, endless)

    scan = _fetch(alice, media_server.url("/stream.mp4"))

    assert scan.status == Scan.Status.FAILED
    assert "larger than 1 MB" in scan.error_message


def test_a_slow_response_is_given_up_within_the_time_limit(alice, media_server, loopback_allowed, settings):
    settings.UNMASK_URL_SCAN_TIMEOUT = 1.0

    def trickle(out: Any) -> None:
        for _ in range(40):
            out.write(b"\0")
            out.flush()
            time.sleep(0.1)

    media_server.routes["/slow.png"] = (200, {"Content-Type": "image/png", "Content-Length": "40"}, trickle)
    started = time.monotonic()

    scan = _fetch(alice, media_server.url("/slow.png"))

    assert scan.status == Scan.Status.FAILED
    assert scan.error_message == "The download did not finish within 1 seconds."
    assert time.monotonic() - started < 2.5


def test_a_server_that_never_answers_is_given_up(alice, loopback_allowed, settings):
    settings.UNMASK_URL_SCAN_TIMEOUT = 1.0
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        scan = _fetch(alice, f"http://127.0.0.1:{listener.getsockname()[1]}/photo.png")
    finally:
        listener.close()

    assert scan.status == Scan.Status.FAILED
    assert scan.error_message == "The download did not finish within 1 seconds."


# --- What is not media -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ((404, {}, b"gone"), "The link answered HTTP 404, not the media."),
        (
            (200, {"Content-Type": "text/html"}, b"<html><body><p>No media here</p></body></html>"),
            "The link is a web page without an image or video in it that Unmask can find",
        ),
        ((200, {"Content-Type": "image/png"}, b"just some text"), "The linked file is not accepted: "),
    ],
    ids=["not-found", "page-without-media", "not-an-image"],
)
def test_a_link_without_media_fails_with_the_reason(route, message, alice, media_server, loopback_allowed, tiny_models):
    media_server.routes["/thing"] = route

    scan = _fetch(alice, media_server.url("/thing"))

    assert scan.status == Scan.Status.FAILED
    assert scan.error_message.startswith(message)
    assert not scan.file


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"source_url": "ftp://example.com/a.jpg"},
            "This link cannot be scanned: Only http:// and https:// URLs with a host are called.",
        ),
        ({"source_url": "not a url"}, "`source_url`: Enter a valid URL."),
        ({"source_url": "https://example.com/a.jpg", "case": "nope"}, "`case` must be the id of a case"),
    ],
)
def test_a_bad_link_is_refused_with_the_reason(payload, message, alice, api_client_for):
    response = api_client_for(alice).post(LIST_URL, payload, format="json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith(message)


def test_a_file_and_a_link_together_are_refused(alice, api_client_for, tiny_models):
    response = api_client_for(alice).post(
        LIST_URL,
        {"source_url": "https://example.com/a.png", "file": _png_upload()},
        format="multipart",
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "Send either a file or a `source_url`, not both."}


def _png_upload():
    from scans.tests.uploads import upload

    return upload(gradient_png(), "chart.png")


# --- The dashboard ----------------------------------------------------------------------------------------


def test_the_dashboard_link_field_starts_a_scan_by_url(alice, media_server, loopback_allowed, tiny_models):
    client = APIClient()
    client.force_login(alice)

    response = client.post(reverse("scans:dashboard"), {"source_url": media_server.url("/photo.png")})

    scan = Scan.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("scans:detail", args=[scan.pk])
    page = client.get(response["Location"]).content.decode()
    assert "Downloading the media from the link" in page
    assert media_server.url("/photo.png") in page
    assert scan.status == Scan.Status.FETCHING and not scan.file


def test_the_dashboard_explains_a_refused_link(alice, settings):
    settings.UNMASK_URL_SCAN_ALLOW_PRIVATE = False
    client = APIClient()
    client.force_login(alice)

    response = client.post(reverse("scans:dashboard"), {"source_url": "http://127.0.0.1/secret.png"})

    assert response.status_code == 400
    assert "This link cannot be scanned: 127.0.0.1 is a loopback address" in response.content.decode()
    assert not Scan.objects.exists()


def test_the_dashboard_wants_a_file_or_a_link(alice):
    client = APIClient()
    client.force_login(alice)

    response = client.post(reverse("scans:dashboard"), {})

    assert response.status_code == 400
    assert "Choose a photo or a video to upload." in response.content.decode()


# --- Finding the media in a page ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (
            '<meta property="og:image" content="a.jpg"><meta property="og:video" content="/v.mp4">',
            "https://n.example/v.mp4",
        ),
        ('<meta property="og:video:secure_url" content="https://cdn.example/v.webm">', "https://cdn.example/v.webm"),
        ('<video src="//cdn.example/x.mp4"></video>', "https://cdn.example/x.mp4"),
        ('<meta name="og:image" content="img/p.png">', "https://n.example/story/img/p.png"),
        (
            '<meta property="og:video" content="javascript:alert(1)"><meta property="og:image" content="p.png">',
            "https://n.example/story/p.png",
        ),
        ("<source src='outside.mp4'>", None),
        ("<p>nothing</p>", None),
    ],
)
def test_the_media_a_page_embeds_is_found(page, expected):
    assert embedded_media_url(page, "https://n.example/story/index.html") == expected


def test_the_reconciler_fails_a_download_whose_job_is_gone(alice, redis_conn):
    from datetime import timedelta

    from django.utils import timezone

    from scans.recovery import LOST_DOWNLOAD_MESSAGE, scans_reconcile

    scan = scan_create_from_url(owner=alice, source_url="https://example.com/a.jpg")
    Scan.objects.filter(pk=scan.pk).update(created_at=timezone.now() - timedelta(minutes=10))

    report = scans_reconcile()

    scan.refresh_from_db()
    assert str(scan.pk) in report.failed
    assert (scan.status, scan.error_message) == ("failed", LOST_DOWNLOAD_MESSAGE)


def test_a_failed_download_still_has_a_page_and_exports(alice, api_client_for, media_server, loopback_allowed):
    from scans.tests.test_exports import validate_export

    scan = _fetch(alice, media_server.url("/missing.png"))
    client = api_client_for(alice)
    page = APIClient()
    page.force_login(alice)

    document = client.get(reverse("api:scan-export-json", args=[scan.pk])).json()
    pdf = client.get(reverse("api:scan-export-pdf", args=[scan.pk]))
    detail = page.get(reverse("scans:detail", args=[scan.pk])).content.decode()

    assert scan.status == Scan.Status.FAILED
    validate_export(document)
    assert document["scan"]["source_url"] == media_server.url("/missing.png") and document["scan"]["kind"] == ""
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert "The link answered HTTP 404, not the media." in detail and "Download the original" not in detail
    assert page.get(reverse("scans:file", args=[scan.pk])).status_code == 404


def test_a_media_url_longer_than_its_column_is_left_out_and_the_scan_goes_on(
    alice, media_server, loopback_allowed, tiny_models
):
    # Video sites' signed file URLs can run past 2,000 characters; the link given stays the record.
    long_path = "/photo.png?signature=" + "a" * 2100
    media_server.routes[long_path] = media_server.routes["/photo.png"]
    media_server.routes["/story-long.html"] = (
        200,
        {"Content-Type": "text/html"},
        f'<html><head><meta property="og:image" content="{long_path}"></head></html>'.encode(),
    )

    scan = _fetch(alice, media_server.url("/story-long.html"))

    assert (scan.status, scan.kind, scan.media_url) == ("queued", "image", "")
    assert scan.source_url == media_server.url("/story-long.html")
