"""Where a scan's evidence images live, and the only way to read them.

The images themselves (face crops, Grad-CAM heatmaps, key-frame thumbnails) are made by `ml` in the same
pass as the analysis (`ml.explain`); `evidence_store` writes them as JPEGs under `evidence/<scan id>/` in the
private media storage, under the names the stored result records (`result["evidence"]["files"]`, and per face
`crop`, `heatmap`, `key_frames[].image`). An owner-only view serves them and refuses any name not recorded.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import Http404, HttpResponse
from PIL import Image
from rq.timeouts import JobTimeoutException

from ml.result import Analysis
from scans.protected_media import private_file_response

if TYPE_CHECKING:
    from scans.models import Scan

logger = logging.getLogger(__name__)

EVIDENCE_FOLDER = "evidence"
JPEG_QUALITY = 88
# The names `ml.explain` gives; anything else is refused before the recorded list is even consulted.
EVIDENCE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}\.jpg$")


class EvidenceNotFound(Exception):
    """The name is not evidence recorded for this scan, or its file is gone."""


def evidence_store(*, scan_id: uuid.UUID | str, analysis: Analysis) -> Analysis:
    """Write the analysis' explaining images under the scan's folder; returns the analysis as it is to be stored.

    Any earlier files of the scan (a retried job) are removed first, so the folder holds exactly what the
    result records. Evidence explains a verdict but is not part of it: if storing fails, the analysis comes
    back without its explanation and with a note saying so, the folder is removed and the error logged.
    """
    started = time.perf_counter()
    evidence_delete(scan_id=scan_id)
    if analysis.explanation is None:
        return analysis
    try:
        for name in analysis.explanation.files:
            _save(scan_id, name, analysis.explanation.images[name])
    except JobTimeoutException:
        raise
    except Exception:
        logger.exception("Evidence for scan %s could not be stored", scan_id)
        evidence_delete(scan_id=scan_id)
        return analysis.without_explanation()
    return replace(analysis, timings=analysis.timings.with_evidence_time(time.perf_counter() - started))


def _save(scan_id: uuid.UUID | str, name: str, pixels: np.ndarray) -> None:
    if not EVIDENCE_NAME.match(name):
        raise ValueError(f"not an evidence name: {name!r}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    stored = default_storage.save(f"{evidence_folder(scan_id)}/{name}", ContentFile(buffer.getvalue()))
    if stored.rsplit("/", 1)[-1] != name:
        # The folder was emptied first, so storage has no reason to rename; a renamed file would be unreachable.
        raise ValueError(f"evidence {name!r} was stored as {stored!r}")


def evidence_folder(scan_id: uuid.UUID | str) -> str:
    """The storage folder of one scan's evidence."""
    return f"{EVIDENCE_FOLDER}/{uuid.UUID(str(scan_id))}"


def evidence_names(analysis: Analysis) -> frozenset[str]:
    """The evidence file names a scan's analysis records (the only ones that may be served)."""
    if analysis.explanation is None:
        return frozenset()
    return frozenset(name for name in analysis.explanation.files if EVIDENCE_NAME.match(name))


def _recorded(scan: Scan, name: str) -> bool:
    return bool(EVIDENCE_NAME.match(name or "")) and name in evidence_names(scan.analysis)


def evidence_open(*, scan: Scan, name: str) -> io.BufferedReader:
    """Open one of the scan's recorded evidence files for reading; EvidenceNotFound otherwise."""
    if not _recorded(scan, name):
        raise EvidenceNotFound(name)
    try:
        return default_storage.open(f"{evidence_folder(scan.id)}/{name}", "rb")
    except (FileNotFoundError, OSError):
        raise EvidenceNotFound(name) from None


def evidence_read(*, scan: Scan, name: str) -> bytes:
    """The bytes of one recorded evidence file (exports embed them)."""
    with evidence_open(scan=scan, name=name) as handle:
        return handle.read()


def evidence_file_response(*, scan: Scan, name: str) -> HttpResponse:
    """One recorded evidence image of `scan` as a private JPEG response; Http404 for any other name.

    The caller has already checked that the requester owns the scan.
    """
    if not _recorded(scan, name):
        raise Http404("No such evidence for this scan.")
    return private_file_response(
        storage=default_storage,
        name=f"{evidence_folder(scan.id)}/{name}",
        content_type="image/jpeg",
        download_name=name,
        as_attachment=False,
    )


def evidence_delete(*, scan_id: uuid.UUID | str) -> None:
    """Remove a scan's evidence folder and everything in it (nothing happens when there is none)."""
    shutil.rmtree(_folder_path(scan_id), ignore_errors=True)


def evidence_copy(*, from_scan_id: uuid.UUID | str, to_scan_id: uuid.UUID | str, names: Iterable[str]) -> None:
    """Copy recorded evidence files from one scan's folder to another's (a reused result)."""
    source, target = _folder_path(from_scan_id), _folder_path(to_scan_id)
    for name in names:
        if not EVIDENCE_NAME.match(name) or not (source / name).is_file():
            continue
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target / name)


def _folder_path(scan_id: uuid.UUID | str) -> Path:
    return Path(default_storage.path(evidence_folder(scan_id)))
