"""RQ entry points for scans: run one scan's analysis and record what happened on its row."""

from __future__ import annotations

import logging
import time
import uuid
from types import TracebackType
from typing import TYPE_CHECKING

from rq.timeouts import JobTimeoutException

from ml.errors import MediaError
from scans.analyzers import NoActiveModel, analyzer_for_scan
from scans.evidence import evidence_delete, scan_result_explained
from scans.log_context import with_scan_log_context
from scans.models import Scan
from scans.services import (
    scan_mark_done,
    scan_mark_failed,
    scan_mark_processing,
    scan_update_progress,
    timeout_message,
)
from training.shadow import shadow_run_for_scan

if TYPE_CHECKING:
    from redis import Redis
    from rq.job import Job

logger = logging.getLogger(__name__)

INTERNAL_ERROR_MESSAGE = "The analysis failed because of an internal error. Please try again later."
NO_MODEL_MESSAGE = "No image model was available to analyse this file."
# Progress is written to the row at most this often (plus at every stage change): a video reports after
# every frame, and each write is a database UPDATE the dashboard polls.
PROGRESS_WRITE_INTERVAL_S = 0.5
_PROGRESS_KEYS = ("stage", "frames_done", "frames_total", "faces_found")


@with_scan_log_context
def analyze_scan(scan_id: str) -> str:
    """Analyse one scan with the models it recorded and store the result on its row.

    Takes the id only and reloads the row. The queued -> processing change is conditional, so a duplicate
    or late job (the scan already running, finished or deleted) does nothing. Any failure ends as a failed
    scan with a readable reason: `MediaError` messages verbatim, anything else a generic message with the
    traceback logged. A timeout is recorded and re-raised so RQ records the job as failed too.
    Returns the outcome ("done", "failed" or "skipped") as the RQ job result.
    """
    if not scan_mark_processing(scan_id=scan_id):
        logger.info("Scan %s is no longer queued (running, finished or deleted): nothing to do", scan_id)
        return "skipped"
    try:
        scan = Scan.objects.select_related("image_model_version", "video_model_version").get(pk=scan_id)
        analyzer = analyzer_for_scan(scan=scan)
        analyze = analyzer.analyze_video if scan.kind == Scan.Kind.VIDEO else analyzer.analyze_image
        result = analyze(scan.file.path, progress=ProgressWriter(scan_id=scan_id))
        evidence_started = time.perf_counter()
        result = scan_result_explained(scan=scan, result=result, analyzer=analyzer)
        # Stored beside the analysis stages so the stage times (and `make bench`) show the heatmaps' share.
        result["timings"] = {
            **(result.get("timings") or {}),
            "evidence_s": round(time.perf_counter() - evidence_started, 4),
        }
        finished = scan_mark_done(scan_id=scan_id, result=result)
        if not finished:
            # Deleted or failed meanwhile: its evidence would be an orphan folder nobody can reach.
            evidence_delete(scan_id=scan_id)
        else:
            # Only now, with the verdict stored and its webhooks scheduled: a shadow candidate can neither delay
            # nor change what the user sees, and shadow_run_for_scan never raises.
            shadow_run_for_scan(scan_id=scan_id)
    except JobTimeoutException:
        scan_mark_failed(scan_id=scan_id, error_message=_timeout_message(scan_id))
        raise
    except Scan.DoesNotExist:
        logger.info("Scan %s was deleted while it was being analysed", scan_id)
        return "skipped"
    except MediaError as exc:
        scan_mark_failed(scan_id=scan_id, error_message=str(exc) or "The file could not be analysed.")
        return "failed"
    except NoActiveModel:
        logger.exception("Scan %s has no model to analyse it with", scan_id)
        scan_mark_failed(scan_id=scan_id, error_message=NO_MODEL_MESSAGE)
        return "failed"
    except Exception:
        logger.exception("Analysis of scan %s failed", scan_id)
        scan_mark_failed(scan_id=scan_id, error_message=INTERNAL_ERROR_MESSAGE)
        return "failed"
    return "done" if finished else "skipped"


def analyze_scan_on_failure(
    job: Job,
    connection: Redis,
    exc_type: type[BaseException] | None,
    exc_value: BaseException | None,
    traceback: TracebackType | None,
) -> None:
    """RQ failure callback: whatever stopped the job (a timeout, above all), the scan ends failed.

    A no-op when `analyze_scan` already recorded the failure, since a failed scan never changes, and when
    the scan has moved on to another job (RQ reports a crashed worker's job as abandoned long after the
    scan was re-queued under a new id).
    """
    scan_id = job.args[0] if job.args else None
    if scan_id is None:
        return
    if exc_type is not None and issubclass(exc_type, JobTimeoutException):
        message = _timeout_message(scan_id)
    else:
        message = INTERNAL_ERROR_MESSAGE
    scan_mark_failed(scan_id=scan_id, error_message=message, job_id=job.id)


class ProgressWriter:
    """The progress callback handed to `ml`: keeps the latest payload and writes it to the row, throttled."""

    def __init__(self, *, scan_id: uuid.UUID | str) -> None:
        self.scan_id = scan_id
        self.progress: dict = {}
        self._last_write = float("-inf")

    def __call__(self, payload: dict) -> None:
        stage_changed = "stage" in payload and payload["stage"] != self.progress.get("stage")
        self.progress.update({key: payload[key] for key in _PROGRESS_KEYS if key in payload})
        now = time.monotonic()
        if stage_changed or now - self._last_write >= PROGRESS_WRITE_INTERVAL_S:
            scan_update_progress(scan_id=self.scan_id, progress=dict(self.progress))
            self._last_write = now


def _timeout_message(scan_id: uuid.UUID | str) -> str:
    kind = Scan.objects.filter(pk=scan_id).values_list("kind", flat=True).first() or Scan.Kind.IMAGE
    return timeout_message(kind)
