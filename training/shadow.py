"""Shadow mode: run the shadow candidate of a kind on each new scan, after the scan's own result is stored.

An admin marks an inactive version as the shadow candidate of its kind (admin action, or
`training.services.model_version_shadow_start`). The scan job then calls `shadow_run_for_scan` once the
scan is done: the candidate scores the same faces (images) or the same tracked frames (videos) the active
version scored, and the outcome goes into a `ShadowResult` row, which only the admin reads. The scan's
verdict is already stored and its webhooks scheduled by then, so shadow mode never delays or changes what
the user sees; whatever goes wrong in it is logged and recorded on the shadow row, never on the scan.
"""

from __future__ import annotations

import logging
import uuid

from rq.timeouts import JobTimeoutException

from scans.analyzers import shadow_scorer_for
from scans.models import Scan
from training.models import ShadowResult
from training.selectors import model_version_shadow
from training.services import shadow_result_record

logger = logging.getLogger(__name__)


def shadow_run_for_scan(*, scan_id: uuid.UUID | str) -> ShadowResult | None:
    """Score the finished scan `scan_id` with the shadow candidate of its kind and record the outcome.

    Returns the recorded row, or None when there is nothing to compare: shadow mode is off for the kind,
    the scan is not done, no face was found (the candidate would see the same zero faces), or the
    candidate is the version that produced the scan's verdict. Never raises (a job timeout included): a
    failure is logged and stored as a failed shadow result.
    """
    try:
        scan = (
            Scan.objects.select_related("image_model_version", "video_model_version")
            .filter(pk=scan_id, status=Scan.Status.DONE)
            .first()
        )
        if scan is None or scan.verdict == Scan.Verdict.NO_FACE:
            return None
        candidate = model_version_shadow(kind=scan.kind)
        reference = scan.video_model_version if scan.kind == Scan.Kind.VIDEO else scan.image_model_version
        if candidate is None or (reference is not None and reference.pk == candidate.pk):
            return None
    except Exception:
        logger.exception("Could not look up the shadow candidate for scan %s", scan_id)
        return None
    record = {
        "scan_id": scan.pk,
        "candidate": candidate,
        "reference": reference,
        "kind": scan.kind,
        "reference_verdict": scan.verdict,
        "reference_probability": scan.fake_probability,
    }
    try:
        outcome = shadow_scorer_for(candidate).score(scan.file.path, scan.result)
    except JobTimeoutException:
        logger.warning("Shadow run of %s on scan %s stopped at the job timeout", candidate, scan.pk)
        return _record_failure(record, "stopped at the job's time limit")
    except Exception as exc:
        logger.exception("Shadow run of %s on scan %s failed", candidate, scan.pk)
        return _record_failure(record, f"{type(exc).__name__}: {exc}")
    try:
        shadow_result = shadow_result_record(**record, outcome=outcome)
    except Exception:
        logger.exception("Could not store the shadow result of %s on scan %s", candidate, scan.pk)
        return None
    logger.info(
        "Shadow %s on scan %s: %s (%s) against %s (%s)",
        candidate.label,
        scan.pk,
        outcome["verdict"],
        outcome["fake_probability"],
        scan.verdict,
        scan.fake_probability,
    )
    return shadow_result


def _record_failure(record: dict, error: str) -> ShadowResult | None:
    if not Scan.objects.filter(pk=record["scan_id"]).exists():
        # The owner deleted the scan meanwhile (which is also why its file was gone): nothing to compare.
        return None
    try:
        return shadow_result_record(**record, error=error)
    except Exception:
        logger.exception("Could not store the shadow failure on scan %s", record["scan_id"])
        return None
