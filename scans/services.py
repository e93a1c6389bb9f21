"""Writes on scans: accept an upload, delete a scan, move a scan through its states, reconcile lost jobs.

Every status change is a conditional UPDATE (`... WHERE status IN (...)`), so a finished scan never
changes again and a duplicate or late job is a no-op: the functions return whether they won.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
import tempfile
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePath
from typing import IO, TYPE_CHECKING

import cv2
import django_rq
import redis
from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_rq.connection_utils import get_redis_connection
from PIL import Image, UnidentifiedImageError
from rq.callbacks import Callback
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from scans.evidence import evidence_copy, evidence_delete, evidence_names
from scans.models import Scan
from scans.webhooks import webhooks_schedule_for_scan
from training.models import ModelVersion
from training.selectors import model_version_active

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.core.files.uploadedfile import UploadedFile
    from django_rq.queues import DjangoRQ

logger = logging.getLogger(__name__)

SCAN_QUEUE = "scans"
# Referenced by dotted path so this module does not import the job module (which imports this one).
ANALYZE_JOB = "scans.jobs.analyze_scan"
ANALYZE_FAILURE_CALLBACK = "scans.jobs.analyze_scan_on_failure"
# A job that never started is re-enqueued once by the reconciler; its id says so, so it happens only once.
REQUEUED_JOB_SUFFIX = "-requeued"
# A job whose worker crashed mid-analysis is run once more under `<job id>-retry<attempts so far>`.
RETRY_JOB_SUFFIX = "-retry"

_CHUNK_BYTES = 1024 * 1024
_MULTIPART_MARGIN_BYTES = 64 * 1024
_SNIFF_BYTES = 64
# Markup that makes an upload an HTML document or an image/HTML polyglot that a browser could run. Uploads
# are never served, but such a file is not an honest photo or video either, so it is refused outright. Each
# pattern needs a tag name and the character after it, so compressed media data essentially never matches by
# chance (a bare "<svg" would: four bytes turn up in a few percent of large files). A standalone SVG is text
# and is refused as such.
_MARKUP = re.compile(rb"<(?:script|html|body|iframe)[\s>/]|<!doctype\s+html|<\?php\s", re.IGNORECASE)
# Bytes kept from one chunk to the next so a tag split across two chunks is still seen.
_MARKUP_OVERLAP = 64

_IMAGE_FORMATS = {
    "JPEG": ("image/jpeg", ".jpg"),
    "PNG": ("image/png", ".png"),
    "WEBP": ("image/webp", ".webp"),
    "BMP": ("image/bmp", ".bmp"),
    "GIF": ("image/gif", ".gif"),
}
_VIDEO_SUFFIXES = {
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "video/x-matroska": ".mkv",
    "video/x-msvideo": ".avi",
}
# ISO base media files whose brand says "still image" (HEIF/AVIF) share the MP4 container magic.
_STILL_IMAGE_FTYP_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}
# Old QuickTime files may open with one of these atoms instead of `ftyp`.
_QUICKTIME_LEADING_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}

SUPPORTED_FORMATS_TEXT = "a JPEG, PNG, WebP, BMP or GIF image, or an MP4, MOV, WebM, MKV or AVI video"
FALLBACK_FILENAME = "upload"


class UploadRejected(Exception):
    """An upload that cannot become a scan.

    `message` is shown to the user as is; `status_code` is the HTTP status an API answers with:
    400 (empty, text, markup, undecodable), 413 (too many bytes or pixels), 415 (a binary format
    that is not a supported image or video), 503 (no active model to analyse it with).
    """

    def __init__(self, message: str, *, status_code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


@dataclass(frozen=True)
class UploadDigest:
    """What one pass over an upload's bytes learnt: its size, SHA-256, first bytes, and whether it holds markup."""

    size_bytes: int
    sha256: str
    head: bytes
    has_markup: bool


class UploadDigester:
    """Hashes an upload and looks for markup chunk by chunk, as its bytes go by once (to disk or elsewhere).

    Fed by `scans.upload_handlers.ScanUploadHandler` while Django writes the request body to disk, so the
    request never reads the stored file again for these checks; `_spool` uses it for uploads that arrive
    otherwise (the dashboard form).
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._size_bytes = 0
        self._head = b""
        self._carry = b""
        self._has_markup = False

    def update(self, chunk: bytes) -> None:
        if len(self._head) < _SNIFF_BYTES:
            self._head += chunk[: _SNIFF_BYTES - len(self._head)]
        if not self._has_markup:
            window = self._carry + chunk
            self._has_markup = _MARKUP.search(window) is not None
            self._carry = window[-_MARKUP_OVERLAP:]
        self._hash.update(chunk)
        self._size_bytes += len(chunk)

    def digest(self) -> UploadDigest:
        return UploadDigest(
            size_bytes=self._size_bytes, sha256=self._hash.hexdigest(), head=self._head, has_markup=self._has_markup
        )


@dataclass(frozen=True)
class _Inspected:
    """What the content of an upload turned out to be."""

    kind: str
    content_type: str
    suffix: str


@dataclass
class ReconcileReport:
    """What one reconciliation pass did, scan ids per outcome."""

    checked: int = 0
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


# --- Upload ------------------------------------------------------------------------------------------


def scan_create(*, owner: AbstractBaseUser, uploaded_file: UploadedFile) -> Scan:
    """Turn an upload into a queued scan and enqueue its analysis once the row is committed.

    The kind and format are decided from the content (container magic bytes for videos, Pillow for
    images), never from the client's file name or Content-Type. The file is stored under a random name;
    the client's name is kept only as cleaned display text. The scan records the model versions that
    are active now, so its result stays attributable after a later activation. When the owner already has
    a finished scan of the same bytes by those same versions, its result (and evidence) is copied into the
    new scan, marked `reused_from`, and no job runs. Raises `UploadRejected`.
    """
    with _local_upload(uploaded_file) as (local_path, digest, content):
        if digest.size_bytes == 0:
            raise UploadRejected("The file is empty.")
        if digest.has_markup:
            raise UploadRejected(
                f"The file contains HTML or script markup, so it is not accepted. Upload {SUPPORTED_FORMATS_TEXT}."
            )
        inspected = _inspect(local_path, size_bytes=digest.size_bytes, head=digest.head)
        image_version, video_version = _versions_for(inspected.kind)

        content.seek(0)
        scan = Scan(
            owner=owner,
            kind=inspected.kind,
            original_filename=display_filename(uploaded_file.name),
            size_bytes=digest.size_bytes,
            sha256=digest.sha256,
            content_type=inspected.content_type,
            image_model_version=image_version,
            video_model_version=video_version,
        )
        earlier = _reusable_scan(scan)
        if earlier is None:
            scan.job_id = _job_id_for(scan.id)
        else:
            _copy_result(earlier, into=scan)
        # A file the upload handler streamed to disk is moved into storage (a rename), not copied.
        scan.file.save(f"{FALLBACK_FILENAME}{inspected.suffix}", content, save=False)
    try:
        with transaction.atomic():
            scan.save(force_insert=True)
            if earlier is None:
                transaction.on_commit(lambda: _enqueue_analysis(scan_id=scan.id, job_id=scan.job_id, kind=scan.kind))
            else:
                names = sorted(evidence_names(scan.result))
                transaction.on_commit(lambda: evidence_copy(from_scan_id=earlier.id, to_scan_id=scan.id, names=names))
                transaction.on_commit(lambda: webhooks_schedule_for_scan(scan_id=scan.id), robust=True)
    except BaseException:
        scan.file.storage.delete(scan.file.name)
        raise
    return scan


def _reusable_scan(scan: Scan) -> Scan | None:
    """The owner's latest finished scan of the same bytes by the same model versions, whose result still holds.

    Only a `done` scan qualifies (a failure may have been transient), and only with exactly the versions
    the new scan would use, so a newly activated model always gets its own look at the file.
    """
    return (
        Scan.objects.filter(
            owner=scan.owner,
            sha256=scan.sha256,
            kind=scan.kind,
            status=Scan.Status.DONE,
            image_model_version=scan.image_model_version,
            video_model_version=scan.video_model_version,
        )
        .order_by("-finished_at")
        .first()
    )


def _copy_result(earlier: Scan, *, into: Scan) -> None:
    """Make `into` a finished scan carrying `earlier`'s result, marked as reused (no job runs for it)."""
    now = timezone.now()
    into.status = Scan.Status.DONE
    into.verdict = earlier.verdict
    into.fake_probability = earlier.fake_probability
    into.faces = earlier.faces
    into.timings = earlier.timings
    into.result = {**earlier.result, "reused_from": str(earlier.id)}
    into.progress = {"stage": "done"}
    into.reused_from = earlier
    into.started_at = now
    into.finished_at = now


def upload_request_size_check(*, content_length: str | int | None) -> None:
    """Refuse (413) a request whose declared body is larger than any accepted upload, before it is read.

    Django would otherwise spool the whole body to disk before `scan_create` could look at it. Multipart
    framing adds a little to the file's size, hence the margin.
    """
    try:
        declared = int(content_length or 0)
    except (TypeError, ValueError):
        return
    limit = max(settings.UNMASK_MAX_IMAGE_BYTES, settings.UNMASK_MAX_VIDEO_BYTES)
    if declared > limit + _MULTIPART_MARGIN_BYTES:
        raise UploadRejected(
            f"The upload is {_megabytes(declared)}; files up to {_megabytes(limit)} are accepted.", status_code=413
        )


def display_filename(raw_name: str | None) -> str:
    """The client's file name as safe display text: no path parts, control or format characters, bounded."""
    name = (raw_name or "").replace("\\", "/").rsplit("/", 1)[-1]
    # Cc: control characters (NUL included); Cf: invisible format characters such as bidi overrides,
    # which can make "gpj.exe" read as "exe.jpg"; Zl/Zp: line breaks.
    name = "".join(char for char in name if unicodedata.category(char) not in {"Cc", "Cf", "Cs", "Zl", "Zp"})
    name = " ".join(name.split())
    if name in {"", ".", ".."}:
        return FALLBACK_FILENAME
    limit = Scan._meta.get_field("original_filename").max_length
    if len(name) <= limit:
        return name
    suffix = PurePath(name).suffix
    if 1 < len(suffix) <= 16:
        return name[: limit - len(suffix) - 1] + "\N{HORIZONTAL ELLIPSIS}" + suffix
    return name[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


@contextmanager
def _local_upload(uploaded_file: UploadedFile) -> Iterator[tuple[Path, UploadDigest, File]]:
    """The upload as a local file, with its digest, and the content to hand to storage.

    An upload that `ScanUploadHandler` received is already on disk with its digest: it is used as it is.
    Any other (in memory, or streamed by Django's own handlers) is copied once to a temporary file while
    its digest is computed.
    """
    digest = getattr(uploaded_file, "upload_digest", None)
    temporary_file_path = getattr(uploaded_file, "temporary_file_path", None)
    if isinstance(digest, UploadDigest) and temporary_file_path is not None:
        yield Path(temporary_file_path()), digest, uploaded_file
        return
    with tempfile.NamedTemporaryFile(prefix="unmask-upload-", dir=settings.FILE_UPLOAD_TEMP_DIR) as spooled:
        digest = _spool(uploaded_file, spooled)
        yield Path(spooled.name), digest, File(spooled)


def _spool(uploaded_file: UploadedFile, spooled: IO[bytes]) -> UploadDigest:
    """Copy the upload to `spooled` while hashing it and looking for markup."""
    digester = UploadDigester()
    uploaded_file.seek(0)
    for chunk in uploaded_file.chunks(_CHUNK_BYTES):
        digester.update(chunk)
        spooled.write(chunk)
    spooled.flush()
    return digester.digest()


def _inspect(path: Path, *, size_bytes: int, head: bytes) -> _Inspected:
    video_type = _video_container_type(head)
    if video_type is not None:
        _check_size(size_bytes, limit=settings.UNMASK_MAX_VIDEO_BYTES, kind_name="video")
        _check_video_decodes(path)
        return _Inspected(kind=Scan.Kind.VIDEO, content_type=video_type, suffix=_VIDEO_SUFFIXES[video_type])
    if head[4:8] == b"ftyp" and head[8:12] in _STILL_IMAGE_FTYP_BRANDS:
        raise UploadRejected(
            f"HEIC and AVIF images are not supported. Upload {SUPPORTED_FORMATS_TEXT}.", status_code=415
        )
    return _inspect_image(path, size_bytes=size_bytes, head=head)


def _video_container_type(head: bytes) -> str | None:
    """The video container named by the file's first bytes, or None when it is not a supported one."""
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _STILL_IMAGE_FTYP_BRANDS:
            return None
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if len(head) >= 8 and head[4:8] in _QUICKTIME_LEADING_ATOMS:
        return "video/quicktime"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        # EBML header: the DocType element says WebM or Matroska.
        return "video/webm" if b"webm" in head else "video/x-matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    return None


def _check_video_decodes(path: Path) -> None:
    capture = cv2.VideoCapture(str(path))
    try:
        decoded, frame = capture.read() if capture.isOpened() else (False, None)
    finally:
        capture.release()
    if not decoded or frame is None or frame.size == 0:
        raise UploadRejected("The video could not be decoded: no frame could be read from it.")


def _inspect_image(path: Path, *, size_bytes: int, head: bytes) -> _Inspected:
    try:
        with Image.open(path, formats=list(_IMAGE_FORMATS)) as image:
            image_format = image.format
            width, height = image.size
            _check_size(size_bytes, limit=settings.UNMASK_MAX_IMAGE_BYTES, kind_name="image")
            if width * height > settings.UNMASK_MAX_IMAGE_PIXELS:
                raise UploadRejected(
                    f"The image is {width}\N{MULTIPLICATION SIGN}{height} pixels; at most "
                    f"{settings.UNMASK_MAX_IMAGE_PIXELS:,} pixels are accepted.",
                    status_code=413,
                )
            if image_format == "JPEG":
                # A reduced-scale decode still reads every entropy-coded block, so truncation shows, at a
                # fraction of the memory a full decode of a large photo needs.
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            image.load()
    except UnidentifiedImageError:
        raise _unrecognised(head) from None
    except Image.DecompressionBombError:
        raise UploadRejected(
            f"The image has too many pixels; at most {settings.UNMASK_MAX_IMAGE_PIXELS:,} are accepted.",
            status_code=413,
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadRejected("The image is damaged or truncated and cannot be decoded.") from exc
    if width == 0 or height == 0:
        raise UploadRejected("The image has no pixels.")
    content_type, suffix = _IMAGE_FORMATS[image_format]
    return _Inspected(kind=Scan.Kind.IMAGE, content_type=content_type, suffix=suffix)


def _unrecognised(head: bytes) -> UploadRejected:
    if _looks_like_text(head):
        return UploadRejected(f"This is a text document, not {SUPPORTED_FORMATS_TEXT}.")
    return UploadRejected(f"Unsupported file format. Upload {SUPPORTED_FORMATS_TEXT}.", status_code=415)


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The sniffed head may end in the middle of a multi-byte character.
        return exc.start >= len(head) - 3
    return True


def _check_size(size_bytes: int, *, limit: int, kind_name: str) -> None:
    if size_bytes > limit:
        raise UploadRejected(
            f"The {kind_name} is {_megabytes(size_bytes)}; {kind_name}s up to {_megabytes(limit)} are accepted.",
            status_code=413,
        )


def _megabytes(size_bytes: int) -> str:
    return f"{size_bytes / (1024 * 1024):.1f} MB"


def _versions_for(kind: str) -> tuple[ModelVersion, ModelVersion | None]:
    """The active versions a new scan of `kind` will use.

    Every scan needs the image model (videos score their face crops with it too). A video also records the
    active video model; without one, the analysis aggregates the frame scores and its result says so.
    """
    image_version = model_version_active(kind=ModelVersion.Kind.IMAGE)
    if image_version is None:
        raise UploadRejected(
            "No active image model is registered yet, so nothing can be analysed. "
            "An administrator must register one (`python manage.py register_shipped_models`).",
            status_code=503,
        )
    video_version = model_version_active(kind=ModelVersion.Kind.VIDEO) if kind == Scan.Kind.VIDEO else None
    return image_version, video_version


# --- Queue -------------------------------------------------------------------------------------------


def _job_id_for(scan_id: uuid.UUID | str, *, requeued: bool = False) -> str:
    return f"scan-{scan_id}{REQUEUED_JOB_SUFFIX if requeued else ''}"


def job_timeout_for(kind: str) -> int:
    """Seconds a job analysing a scan of `kind` may run before RQ stops it."""
    return settings.UNMASK_VIDEO_JOB_TIMEOUT if kind == Scan.Kind.VIDEO else settings.UNMASK_IMAGE_JOB_TIMEOUT


def timeout_message(kind: str) -> str:
    """What a scan whose analysis ran past its job timeout tells the user."""
    return (
        f"The analysis did not finish within {job_timeout_for(kind)} seconds and was stopped. "
        "Please try a shorter or smaller file."
    )


def scan_queue(kind: str | None = None) -> DjangoRQ:
    """The RQ queue of analysis jobs of `kind` (the main scan queue when None); enqueues immediately (callers
    decide when, via on_commit)."""
    name = scan_queue_name(kind)
    return django_rq.get_queue(name, commit_mode="auto", connection=_queue_redis(name))


def scan_queue_name(kind: str | None) -> str:
    """UNMASK_IMAGE_QUEUE or UNMASK_VIDEO_QUEUE (both "scans" by default): videos can go to GPU workers."""
    if kind == Scan.Kind.VIDEO:
        return settings.UNMASK_VIDEO_QUEUE
    if kind == Scan.Kind.IMAGE:
        return settings.UNMASK_IMAGE_QUEUE
    return SCAN_QUEUE


def scan_queue_names() -> list[str]:
    """Every queue scans are analysed from (for health and metrics), the main one first."""
    return list(dict.fromkeys([SCAN_QUEUE, settings.UNMASK_IMAGE_QUEUE, settings.UNMASK_VIDEO_QUEUE]))


def job_queue_names() -> list[str]:
    """Every queue the platform puts jobs on: the scan queues, then webhook deliveries (what a plain
    `scan_worker` serves, in that priority order, and what the metrics report)."""
    return list(dict.fromkeys([*scan_queue_names(), settings.UNMASK_WEBHOOK_QUEUE]))


def _queue_redis(name: str) -> redis.Redis:
    """Queue `name`'s Redis client, one per process and configuration, so its connection pool is reused.

    django-rq builds a new client, and so a new connection pool, on every `get_queue` call: each upload
    then paid for a fresh TCP connection and handshake. The cache is keyed by the queue's settings, so a
    changed RQ_QUEUES (tests) gets its own client; redis-py's pool resets itself after a fork.
    """
    config = settings.RQ_QUEUES[name]
    key = repr(sorted(config.items()))
    client = _QUEUE_REDIS_CLIENTS.get(key)
    if client is None:
        client = _QUEUE_REDIS_CLIENTS.setdefault(key, get_redis_connection(config))
    return client


_QUEUE_REDIS_CLIENTS: dict[str, redis.Redis] = {}


def _enqueue_analysis(*, scan_id: uuid.UUID, job_id: str, kind: str) -> None:
    """Put the analysis job on the queue; if Redis refuses, fail the scan at once rather than leave it hanging."""
    try:
        scan_queue(kind).enqueue(
            ANALYZE_JOB,
            str(scan_id),
            job_id=job_id,
            job_timeout=job_timeout_for(kind),
            on_failure=Callback(ANALYZE_FAILURE_CALLBACK),
            description=f"analyse {kind} scan {scan_id}",
            result_ttl=24 * 3600,
            failure_ttl=7 * 24 * 3600,
        )
    except redis.RedisError:
        logger.exception("Could not enqueue the analysis of scan %s", scan_id)
        scan_mark_failed(
            scan_id=scan_id, error_message="The analysis queue is unavailable. Please upload the file again later."
        )


# --- Delete ------------------------------------------------------------------------------------------


@transaction.atomic
def scan_delete(*, scan: Scan) -> None:
    """Delete the scan's row, then its stored file and evidence folder once the deletion is committed.

    A job still queued for it finds no row and does nothing; one already running cannot write a result
    back, because every transition is an UPDATE of a row that no longer exists.
    """
    storage = scan.file.storage
    file_name = scan.file.name
    scan_id = scan.pk
    Scan.objects.filter(pk=scan.pk).delete()
    if file_name:
        transaction.on_commit(lambda: storage.delete(file_name))
    transaction.on_commit(lambda: evidence_delete(scan_id=scan_id))


@transaction.atomic
def scans_delete_many(*, owner: AbstractBaseUser, scan_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Delete those of `scan_ids` that `owner` owns (others are ignored, never revealed); returns their ids.

    Files and evidence folders go once the deletion is committed, as for `scan_delete`.
    """
    scans = list(Scan.objects.filter(owner=owner, pk__in=scan_ids).only("id", "file"))
    for scan in scans:
        scan_delete(scan=scan)
    return {scan.id for scan in scans}


# --- Transitions -------------------------------------------------------------------------------------


@transaction.atomic
def scan_mark_processing(*, scan_id: uuid.UUID | str) -> bool:
    """queued -> processing, counting the attempt. False when the scan is gone or already past queued."""
    updated = Scan.objects.filter(pk=scan_id, status=Scan.Status.QUEUED).update(
        status=Scan.Status.PROCESSING,
        started_at=timezone.now(),
        attempts=F("attempts") + 1,
        progress={"stage": "starting"},
    )
    return updated == 1


@transaction.atomic
def scan_update_progress(*, scan_id: uuid.UUID | str, progress: dict) -> bool:
    """Record how far a running analysis is; ignored once the scan is no longer processing."""
    return Scan.objects.filter(pk=scan_id, status=Scan.Status.PROCESSING).update(progress=progress) == 1


@transaction.atomic
def scan_mark_done(*, scan_id: uuid.UUID | str, result: dict) -> bool:
    """processing -> done, storing the analysis result and the fields copied from it for listing.

    Raises ValueError for a result that breaks the ml contract (unknown verdict, probability outside
    [0, 1], or a probability without a face), so a broken result is never shown as a verdict.
    """
    verdict = result.get("verdict")
    fake_probability = result.get("fake_probability")
    if verdict not in Scan.Verdict.values:
        raise ValueError(f"analysis returned an unknown verdict {verdict!r}")
    if verdict == Scan.Verdict.NO_FACE:
        if fake_probability is not None:
            raise ValueError("analysis found no face but returned a probability")
    elif fake_probability is None or not 0.0 <= float(fake_probability) <= 1.0:
        raise ValueError(f"analysis returned an invalid fake probability {fake_probability!r}")
    updated = Scan.objects.filter(pk=scan_id, status=Scan.Status.PROCESSING).update(
        status=Scan.Status.DONE,
        verdict=verdict,
        fake_probability=None if fake_probability is None else float(fake_probability),
        faces=result.get("faces") or [],
        timings=result.get("timings") or {},
        result=result,
        progress={"stage": "done"},
        error_message="",
        finished_at=timezone.now(),
    )
    if updated == 1:
        transaction.on_commit(lambda: webhooks_schedule_for_scan(scan_id=scan_id), robust=True)
    return updated == 1


@transaction.atomic
def scan_mark_failed(*, scan_id: uuid.UUID | str, error_message: str, job_id: str | None = None) -> bool:
    """queued or processing -> failed with a user-facing reason; a finished scan is left as it is.

    With `job_id`, only while that is still the scan's job: a late report about a job the scan has moved
    on from (RQ failing the job of a crashed worker after the scan was re-queued) changes nothing.
    """
    unfinished = Scan.objects.filter(pk=scan_id, status__in=[Scan.Status.QUEUED, Scan.Status.PROCESSING])
    if job_id is not None:
        unfinished = unfinished.filter(job_id=job_id)
    updated = unfinished.update(
        status=Scan.Status.FAILED,
        error_message=error_message,
        progress={"stage": "failed"},
        finished_at=timezone.now(),
    )
    if updated == 1:
        transaction.on_commit(lambda: webhooks_schedule_for_scan(scan_id=scan_id), robust=True)
    return updated == 1


# --- Reconciliation ----------------------------------------------------------------------------------

_LIVE_JOB_STATUSES = frozenset(
    {JobStatus.CREATED, JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
)
LOST_BEFORE_START_MESSAGE = "The analysis job was lost before it could start. Please upload the file again."
WORKER_CRASHED_TWICE_MESSAGE = (
    "The analysis was stopped twice because the worker analysing this file crashed (for example, it ran out "
    "of memory), so it was not tried again. The file may be too large or damaged for analysis."
)
# Runs of the analysis a scan gets when workers crash under it: the first, and one retry.
MAX_ANALYSIS_ATTEMPTS = 2


def scans_reconcile(*, grace_seconds: int = 60, now: datetime | None = None) -> ReconcileReport:
    """Finish scans whose job is gone, so that no scan waits forever.

    Looks at queued and processing scans older than `grace_seconds` (a just-committed scan may not be
    enqueued yet). A queued scan with no live RQ job that never started is re-enqueued once; after that,
    or when it had started, it is marked failed. A processing scan that has run past its kind's job timeout
    (plus the grace) is marked failed; one whose job is no longer live lost its worker, and goes to
    `scan_retry_after_crash` (one more run, or failed after the second crash). Done and failed scans are
    never touched: every change here is a conditional update, so a job finishing meanwhile wins.
    """
    now = now or timezone.now()
    connection = scan_queue().connection
    report = ReconcileReport()
    unfinished = Scan.objects.filter(
        status__in=[Scan.Status.QUEUED, Scan.Status.PROCESSING],
        created_at__lt=now - timedelta(seconds=grace_seconds),
    ).only("id", "kind", "status", "job_id", "attempts", "created_at", "started_at")
    for scan in unfinished.iterator():
        report.checked += 1
        job_is_live = _job_status(connection, scan.job_id) in _LIVE_JOB_STATUSES
        if scan.status == Scan.Status.QUEUED:
            if job_is_live:
                continue
            if scan.attempts == 0 and not scan.job_id.endswith(REQUEUED_JOB_SUFFIX):
                if scan_requeue(scan=scan):
                    report.requeued.append(str(scan.id))
                continue
            if scan_mark_failed(scan_id=scan.id, error_message=LOST_BEFORE_START_MESSAGE):
                report.failed.append(str(scan.id))
            continue
        started_at = scan.started_at or scan.created_at
        deadline = started_at + timedelta(seconds=job_timeout_for(scan.kind) + grace_seconds)
        if job_is_live and now < deadline:
            continue
        if now >= deadline:
            if scan_mark_failed(scan_id=scan.id, error_message=timeout_message(scan.kind)):
                report.failed.append(str(scan.id))
            continue
        # The job is gone or ended without finishing the row: its worker died under it.
        outcome = scan_retry_after_crash(scan_id=scan.id, job_id=scan.job_id)
        if outcome == CrashOutcome.REQUEUED:
            report.requeued.append(str(scan.id))
        elif outcome == CrashOutcome.FAILED:
            report.failed.append(str(scan.id))
    return report


class CrashOutcome(enum.StrEnum):
    """What `scan_retry_after_crash` did."""

    REQUEUED = "requeued"
    FAILED = "failed"
    UNCHANGED = "unchanged"


@transaction.atomic
def scan_retry_after_crash(*, scan_id: uuid.UUID | str, job_id: str) -> CrashOutcome:
    """A processing scan whose worker died under job `job_id`: analyse it once more, or fail it after the second crash.

    A crash may be the machine's fault (a deploy, a node lost), so the user's scan is not lost to the first:
    it goes back to `queued` under a new job id and is enqueued once committed. A scan that has already had
    `MAX_ANALYSIS_ATTEMPTS` runs is failed with a reason that says it crashed twice (a file that kills the
    worker every time must not take down worker after worker). Both changes are conditional on the scan
    still processing that same job, so a scan that finished, or was retried already, is left alone.
    """
    still_crashed = Scan.objects.filter(pk=scan_id, status=Scan.Status.PROCESSING, job_id=job_id)
    scan = still_crashed.only("id", "kind", "attempts").first()
    if scan is None:
        return CrashOutcome.UNCHANGED
    if scan.attempts >= MAX_ANALYSIS_ATTEMPTS:
        failed = scan_mark_failed(scan_id=scan_id, error_message=WORKER_CRASHED_TWICE_MESSAGE, job_id=job_id)
        return CrashOutcome.FAILED if failed else CrashOutcome.UNCHANGED
    retry_job_id = f"{_job_id_for(scan_id)}{RETRY_JOB_SUFFIX}{scan.attempts}"
    updated = still_crashed.filter(attempts=scan.attempts).update(
        status=Scan.Status.QUEUED,
        job_id=retry_job_id,
        started_at=None,
        progress={"stage": "queued again after a worker crash"},
    )
    if updated != 1:
        return CrashOutcome.UNCHANGED
    kind = scan.kind
    transaction.on_commit(lambda: _enqueue_analysis(scan_id=scan_id, job_id=retry_job_id, kind=kind))
    logger.warning("Scan %s re-queued as job %s: its worker died under job %s", scan_id, retry_job_id, job_id)
    return CrashOutcome.REQUEUED


@transaction.atomic
def scan_requeue(*, scan: Scan) -> bool:
    """Enqueue a never-started queued scan a second (and last) time under a new job id."""
    requeued_job_id = _job_id_for(scan.id, requeued=True)
    updated = Scan.objects.filter(pk=scan.pk, status=Scan.Status.QUEUED, attempts=0, job_id=scan.job_id).update(
        job_id=requeued_job_id
    )
    if updated != 1:
        return False
    scan_id, kind = scan.id, scan.kind
    transaction.on_commit(lambda: _enqueue_analysis(scan_id=scan_id, job_id=requeued_job_id, kind=kind))
    return True


def _job_status(connection: redis.Redis, job_id: str) -> JobStatus | None:
    if not job_id:
        return None
    try:
        return Job.fetch(job_id, connection=connection).get_status(refresh=False)
    except NoSuchJobError:
        return None
