"""The way in for every upload (the API, the dashboard form, each file of a batch): refuse a request too large
to read, count the attempt against the user's limits, and give the daily quota back unless a scan came of it.

`upload_attempt` is that protocol, written once:

    with upload_attempt(owner=user, content_length=request.META.get("CONTENT_LENGTH")) as attempt:
        attempt.accept(scan_create(owner=user, uploaded_file=...))

`UploadSizeLimitMiddleware` (deepfake_site.security) runs the same size checks before anything reads the body.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

from scans.models import Scan
from scans.ratelimit import upload_attempt_register, upload_quota_release
from scans.services import scan_create
from scans.uploads import UploadRejected, megabytes

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.core.files.uploadedfile import UploadedFile

# Multipart framing adds a little to the file's own size.
_MULTIPART_MARGIN_BYTES = 64 * 1024


class BatchRejected(Exception):
    """A batch refused as a whole (no file, too many files, too large); `status_code` is the HTTP answer."""

    def __init__(self, message: str, *, status_code: int = 400, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.retry_after = retry_after


@dataclass
class UploadAttempt:
    """One upload attempt inside `upload_attempt`; `accept` records the scan it became."""

    scan: Scan | None = None

    def accept(self, scan: Scan) -> Scan:
        self.scan = scan
        return scan


@contextmanager
def upload_attempt(*, owner: AbstractBaseUser, content_length: str | int | None = None) -> Iterator[UploadAttempt]:
    """Refuse an oversized request (`UploadRejected`, 413), count one attempt against the owner's rate limit
    and quota (`UploadThrottled`), then run the block; unless the block accepted a scan, whatever ended it
    (a refused file, an invalid form, an error), the quota unit is given back: only scans count against it."""
    upload_request_size_check(content_length=content_length)
    upload_attempt_register(user=owner)
    attempt = UploadAttempt()
    try:
        yield attempt
    finally:
        if attempt.scan is None:
            upload_quota_release(user=owner)


def scan_intake(*, owner: AbstractBaseUser, uploaded_file: UploadedFile) -> Scan:
    """One file through `upload_attempt` into `scan_create` (each file of a batch comes in this way)."""
    with upload_attempt(owner=owner) as attempt:
        return attempt.accept(scan_create(owner=owner, uploaded_file=uploaded_file))


def upload_request_size_check(*, content_length: str | int | None) -> None:
    """Refuse (413) a request whose declared body is larger than any accepted upload, before it is read.

    Django would otherwise spool the whole body to disk before `scan_create` could look at it.
    """
    declared = _declared_bytes(content_length)
    limit = max(settings.UNMASK_MAX_IMAGE_BYTES, settings.UNMASK_MAX_VIDEO_BYTES)
    if declared > limit + _MULTIPART_MARGIN_BYTES:
        raise UploadRejected(
            f"The upload is {megabytes(declared)}; files up to {megabytes(limit)} are accepted.", status_code=413
        )


def batch_request_size_check(*, content_length: str | int | None) -> None:
    """Refuse (413) a batch request whose declared body is larger than UNMASK_BATCH_MAX_BYTES, before reading it."""
    declared = _declared_bytes(content_length)
    if declared > settings.UNMASK_BATCH_MAX_BYTES:
        raise BatchRejected(
            f"The batch is {megabytes(declared)}; batches up to {megabytes(settings.UNMASK_BATCH_MAX_BYTES)} "
            "are accepted.",
            status_code=413,
        )


def _declared_bytes(content_length: str | int | None) -> int:
    """The declared body size; 0 when none (or a malformed one) was declared, which the body reading limits."""
    try:
        return int(content_length or 0)
    except (TypeError, ValueError):
        return 0
