"""RQ entry points for scans: a thin wrapper around `scans.analysis.scan_analyze` that keeps the row's state
true whatever happens (NetBox's JobRunner): mark it processing, run the service, mark it failed on any error."""

from __future__ import annotations

import logging
import uuid
from types import TracebackType
from typing import TYPE_CHECKING

from django.core.files import File
from rq.exceptions import AbandonedJobError
from rq.timeouts import JobTimeoutException

from ml.errors import MediaError
from scans.analysis import scan_analyze
from scans.analyzers import NoActiveModel
from scans.log_context import with_scan_log_context
from scans.models import Scan
from scans.queues import timeout_message
from scans.recovery import scan_retry_after_crash
from scans.services import scan_fill_fetched, scan_mark_failed, scan_mark_processing
from scans.uploads import UploadRejected
from scans.url_fetch import FetchFailed, fetched_media

if TYPE_CHECKING:
    from redis import Redis
    from rq.job import Job

logger = logging.getLogger(__name__)

INTERNAL_ERROR_MESSAGE = "The analysis failed because of an internal error. Please try again later."
NO_MODEL_MESSAGE = "No image model was available to analyse this file."


@with_scan_log_context
def analyze_scan(scan_id: str) -> str:
    """Analyse one scan and record what happened on its row; returns "done", "failed" or "skipped".

    Takes the id only (the service reloads the row). The queued -> processing change is conditional, so a
    duplicate or late job (the scan already running, finished or deleted) does nothing. Any failure ends as
    a failed scan with a readable reason (`failure_message`). A timeout is recorded and re-raised so RQ
    records the job as failed too.
    """
    if not scan_mark_processing(scan_id=scan_id):
        logger.info("Scan %s is no longer queued (running, finished or deleted): nothing to do", scan_id)
        return "skipped"
    try:
        return scan_analyze(scan_id=scan_id)
    except Scan.DoesNotExist:
        logger.info("Scan %s was deleted while it was being analysed", scan_id)
        return "skipped"
    except Exception as exc:
        timeout = _timeout_behind(exc)
        if timeout is not None:
            scan_mark_failed(scan_id=scan_id, error_message=_timeout_message(scan_id))
            if timeout is exc:
                raise
            raise timeout from exc  # RQ records the timeout; the traceback keeps TensorFlow's wrapper
        scan_mark_failed(scan_id=scan_id, error_message=failure_message(exc, scan_id=scan_id))
        return "failed"


def _timeout_behind(exc: BaseException) -> JobTimeoutException | None:
    """RQ's timeout, whether raised as it is or wrapped: RQ's alarm can go off inside a tf.function call, and
    TensorFlow re-raises whatever interrupts one as its own TypeError (`raise TypeError(...) from e`)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, JobTimeoutException):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def failure_message(exc: Exception, *, scan_id: uuid.UUID | str) -> str:
    """What a failed scan tells its owner: a media problem verbatim, anything else generically (and logged,
    with its traceback: call it while handling `exc`)."""
    if isinstance(exc, MediaError):
        return str(exc) or "The file could not be analysed."
    if isinstance(exc, NoActiveModel):
        logger.exception("Scan %s has no model to analyse it with", scan_id)
        return NO_MODEL_MESSAGE
    logger.exception("Analysis of scan %s failed", scan_id)
    return INTERNAL_ERROR_MESSAGE


def analyze_scan_on_failure(
    job: Job,
    connection: Redis,
    exc_type: type[BaseException] | None,
    exc_value: BaseException | None,
    traceback: TracebackType | None,
) -> None:
    """RQ failure callback: a job whose worker died runs once more; whatever else stopped it (a timeout, above
    all), the scan ends failed.

    RQ calls it with `AbandonedJobError` when the job's execution heartbeat expired: its worker died under it
    (`scans.heartbeats`), so the scan gets the retry a crash deserves (`scan_retry_after_crash`). Every change
    is conditional on the scan still being on this job, so a scan that finished, or has moved on to another
    job (already retried by `scans_recover_orphaned`), is left alone.
    """
    scan_id = job.args[0] if job.args else None
    if scan_id is None:
        return
    if exc_type is not None and issubclass(exc_type, AbandonedJobError):
        scan_retry_after_crash(scan_id=scan_id, job_id=job.id)
        return
    if exc_type is not None and issubclass(exc_type, JobTimeoutException):
        message = _timeout_message(scan_id)
    else:
        message = INTERNAL_ERROR_MESSAGE
    scan_mark_failed(scan_id=scan_id, error_message=message, job_id=job.id)


def _timeout_message(scan_id: uuid.UUID | str) -> str:
    kind = Scan.objects.filter(pk=scan_id).values_list("kind", flat=True).first() or Scan.Kind.IMAGE
    return timeout_message(kind)


@with_scan_log_context
def fetch_scan(scan_id: str) -> str:
    """Download the media of a scan by URL and queue its analysis; returns "queued", "failed" or "skipped".

    Takes the id only and reloads the row: a scan no longer fetching (deleted, or already failed) is skipped.
    A link that gives no acceptable media (refused address, too big, too slow, not an image or video) ends as a
    failed scan with the reason; so does any other error, generically.
    """
    source_url = (
        Scan.objects.filter(pk=scan_id, status=Scan.Status.FETCHING).values_list("source_url", flat=True).first()
    )
    if source_url is None:
        logger.info("Scan %s is no longer waiting for its download: nothing to do", scan_id)
        return "skipped"
    try:
        with fetched_media(source_url) as media, media.path.open("rb") as handle:
            filled = scan_fill_fetched(
                scan_id=scan_id,
                fetched_file=File(handle, name=media.filename),
                filename=media.filename,
                media_url=media.media_url,
            )
    except FetchFailed as exc:
        scan_mark_failed(scan_id=scan_id, error_message=exc.message)
        return "failed"
    except UploadRejected as exc:
        scan_mark_failed(scan_id=scan_id, error_message=f"The linked file is not accepted: {exc.message}")
        return "failed"
    except Exception:
        logger.exception("Download of scan %s failed", scan_id)
        scan_mark_failed(scan_id=scan_id, error_message=INTERNAL_ERROR_MESSAGE)
        return "failed"
    return "queued" if filled else "skipped"
