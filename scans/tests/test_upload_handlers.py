"""The streaming upload handler: an API upload is read once (hashed and checked on the way to disk), then moved."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from django.urls import reverse

from scans import uploads
from scans.models import Scan
from scans.tests.uploads import image_bytes, short_clip, upload
from scans.uploads import UploadDigester

pytestmark = pytest.mark.django_db

LIST_URL = reverse("api:scan-list")
HTML_TAIL = b"<html><body><script>alert(1)</script></body></html>"


@pytest.fixture
def upload_temp_dir(tmp_path: Path, settings) -> Path:
    """A folder of its own for the upload's temporary file, to see that nothing is left in it."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    return folder


@pytest.fixture
def no_second_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if scan_create copies the upload again instead of using the handler's file and digest."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the upload was read a second time")

    monkeypatch.setattr(uploads, "_spool", refuse)


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 4096])
def test_the_digester_gives_the_same_digest_however_the_bytes_are_chunked(chunk_size):
    content = image_bytes("PNG") + b"\x00" * 5000
    digester = UploadDigester()

    for start in range(0, len(content), chunk_size):
        digester.update(content[start : start + chunk_size])

    digest = digester.digest()
    assert (digest.size_bytes, digest.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    assert digest.head == content[:64]
    assert digest.has_markup is False


def test_the_digester_sees_markup_split_across_chunks():
    digester = UploadDigester()

    digester.update(image_bytes("PNG") + b"<scr")
    digester.update(b"ipt>alert(1)</script>")

    assert digester.digest().has_markup is True


@pytest.mark.parametrize("kind", [Scan.Kind.IMAGE, Scan.Kind.VIDEO])
def test_an_api_upload_is_hashed_while_streamed_and_moved_into_storage(
    alice, tiny_models, api_client_for, redis_conn, no_second_read, upload_temp_dir, settings, data_dir, kind
):
    if kind == Scan.Kind.VIDEO:
        content, name = short_clip(data_dir).read_bytes(), "clip.mp4"
    else:
        content, name = image_bytes("JPEG"), "a.jpg"

    response = api_client_for(alice).post(LIST_URL, {"file": upload(content, name)}, format="multipart")

    assert response.status_code == 202, response.content
    scan = Scan.objects.get(pk=response.json()["id"])
    assert (scan.kind, scan.size_bytes, scan.sha256) == (kind, len(content), hashlib.sha256(content).hexdigest())
    stored = Path(scan.file.path)
    assert stored.read_bytes() == content
    assert oct(os.stat(stored).st_mode & 0o777) == oct(settings.FILE_UPLOAD_PERMISSIONS)
    # Moved, not copied: nothing is left in the upload temp folder.
    assert list(upload_temp_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "words"),
    [(image_bytes("PNG") + HTML_TAIL, "markup"), (b"", "empty"), (b"plain text, not a video\n" * 10, "text document")],
    ids=["polyglot", "empty", "text"],
)
def test_content_checks_are_unchanged_on_the_streaming_path(
    alice, tiny_models, api_client_for, redis_conn, no_second_read, upload_temp_dir, _private_media, content, words
):

    response = api_client_for(alice).post(LIST_URL, {"file": upload(content, "x.mp4")}, format="multipart")

    assert response.status_code == 400
    assert words in response.json()["detail"]
    assert not Scan.objects.exists()
    assert [path for path in _private_media.rglob("*") if path.is_file()] == []
    # The request is over: its temporary file went with it.
    assert list(upload_temp_dir.iterdir()) == []


def test_a_session_authenticated_upload_also_streams(alice, tiny_models, client, redis_conn, no_second_read):
    """Session authentication checks CSRF, which reads the form: the handler must be in place before that."""
    client.force_login(alice)

    response = client.post(LIST_URL, {"file": upload(image_bytes("PNG"), "a.png")})

    # Django's test client skips CSRF checks by default; the upload itself must still stream.
    assert response.status_code == 202, response.content
