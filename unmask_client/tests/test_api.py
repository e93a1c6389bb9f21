"""The client's HTTP layer opens http:// and https:// URLs only (bandit B310): never a file, ftp or data URL."""

from __future__ import annotations

import socket
import urllib.error
from collections.abc import Iterator

import pytest

from unmask_client.api import ApiError, UnmaskApi, http_only_opener


@pytest.fixture
def loopback_listener() -> Iterator[socket.socket]:
    """A loopback port that accepts connections (and counts them) but is never served."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    yield listener
    listener.close()


@pytest.mark.parametrize("url", ["file:///etc/hostname", "ftp://127.0.0.1/file", "data:text/plain,hello"])
def test_the_opener_refuses_every_scheme_but_http_and_https(url):
    with pytest.raises(urllib.error.URLError, match="unknown url type"):
        http_only_opener().open(url, timeout=5)


def test_an_ftp_proxy_in_the_environment_does_not_open_ftp_urls(monkeypatch, loopback_listener):
    monkeypatch.setenv("ftp_proxy", f"http://127.0.0.1:{loopback_listener.getsockname()[1]}")

    with pytest.raises(urllib.error.URLError, match="unknown url type"):
        http_only_opener().open("ftp://files.example/report.pdf", timeout=5)
    with pytest.raises(TimeoutError):
        loopback_listener.accept()


def test_a_server_url_that_is_not_http_is_refused_before_anything_is_opened():
    with pytest.raises(ApiError, match="must start with http:// or https://"):
        UnmaskApi("file:///etc", "token").scan_get("anything")
