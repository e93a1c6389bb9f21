"""Shadow mode: the shadow candidate of a kind rescores each new scan, after the scan's own result is stored.

An admin marks an inactive version as the shadow candidate of its kind (admin action, or
`training.services.model_version_shadow_start`). The scan's analysis then also cuts the candidate's crops in
its one pass over the media (`shadow_crop_rules`), and once the scan is done `shadow_run` has the candidate
score those very faces (photos) or tracked frames (videos); the outcome goes into a `ShadowResult` row, which
only the admin reads. The scan's verdict is already stored and announced by then, so shadow mode never delays
or changes what the user sees; whatever goes wrong in it is logged and recorded on the shadow row, never on
the scan.
"""

from __future__ import annotations

import logging

from rq.timeouts import JobTimeoutException

from ml.faces import CropRule
from ml.result import Analysis
from scans.analyzers import shadow_scorer_for
from scans.models import Scan
from training.models import ModelVersion, ShadowResult
from training.selectors import model_version_shadow
from training.services import shadow_result_record

logger = logging.getLogger(__name__)


def shadow_candidate_for(*, scan: Scan) -> ModelVersion | None:
    """The version that should rescore `scan`: its kind's shadow candidate, unless that is the version giving
    the scan's verdict. Never raises: a failed lookup is logged and means no shadow run."""
    try:
        candidate = model_version_shadow(kind=scan.kind)
    except Exception:
        logger.exception("Could not look up the shadow candidate for scan %s", scan.pk)
        return None
    reference = _reference(scan)
    if candidate is None or (reference is not None and reference.pk == candidate.pk):
        return None
    return candidate


def shadow_crop_rules(candidate: ModelVersion | None) -> list[CropRule]:
    """The crops the analysis must also cut for `candidate`, read from its settings (nothing is loaded)."""
    return [] if candidate is None else [CropRule.from_dict(candidate.settings.get("crop_rule"))]


def shadow_run(*, scan: Scan, analysis: Analysis, candidate: ModelVersion | None) -> ShadowResult | None:
    """Score the finished scan's analysis with `candidate` and record the outcome.

    Returns the recorded row, or None when there is nothing to compare: no candidate, or no face was found
    (the candidate would see the same zero faces). Never raises (a job timeout included): a failure is
    logged and stored as a failed shadow result.
    """
    if candidate is None or analysis.verdict == Scan.Verdict.NO_FACE:
        return None
    reference = _reference(scan)
    record = {
        "scan_id": scan.pk,
        "candidate": candidate,
        "reference": reference,
        "kind": scan.kind,
        "reference_verdict": analysis.verdict,
        "reference_probability": analysis.fake_probability,
    }
    try:
        outcome = shadow_scorer_for(candidate).score(analysis)
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
        outcome.verdict,
        outcome.fake_probability,
        analysis.verdict,
        analysis.fake_probability,
    )
    return shadow_result


def _reference(scan: Scan) -> ModelVersion | None:
    """The version whose verdict the owner sees."""
    return scan.video_model_version if scan.kind == Scan.Kind.VIDEO else scan.image_model_version


def _record_failure(record: dict, error: str) -> ShadowResult | None:
    if not Scan.objects.filter(pk=record["scan_id"]).exists():
        # The owner deleted the scan meanwhile: nothing to compare.
        return None
    try:
        return shadow_result_record(**record, error=error)
    except Exception:
        logger.exception("Could not store the shadow failure on scan %s", record["scan_id"])
        return None
